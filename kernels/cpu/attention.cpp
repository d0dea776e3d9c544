#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/core/error.h"

namespace moe::cpu {
namespace {

// o += p * v, each product rounded before its add (no fused multiply-add: the build forbids
// contraction), element by element, so the vector width (a clone per instruction set) cannot
// change a bit. Blocks of 16 vectorise without a cost model's consent.
__attribute__((target_clones("avx512f", "avx2", "default"))) void accumulate(float* __restrict o, float p,
                                                                             const float* __restrict v, int64_t n) {
  int64_t d = 0;
  for (; d + 16 <= n; d += 16)
    for (int i = 0; i < 16; ++i) o[d + i] += p * v[d + i];
  for (; d < n; ++d) o[d] += p * v[d];
}

}  // namespace

void attention(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens, int64_t first_position,
               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t sliding_window,
               const uint8_t* head_mask) {
  MOE_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, ErrorCode::kInvalidArgument,
            "attention: {} heads cannot share {} kv heads", n_heads, n_kv_heads);
  const int64_t group = n_heads / n_kv_heads;
  const int64_t kv_row = n_kv_heads * head_dim;
  ThreadPool& pool = ThreadPool::global();
  // One job per (token, kv head): the query heads that share the kv head score every key in view
  // with one matmul (the 32-lane dot products of matmul.h, the same bits on every instruction set).
  pool.parallel_for(n_tokens * n_kv_heads, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / n_kv_heads, kv = job % n_kv_heads;
      const int64_t position = first_position + t;
      const int64_t first_key = sliding_window > 0 ? std::max<int64_t>(0, position - sliding_window + 1) : 0;
      const int64_t keys = position + 1 - first_key;
      WeightMatrix k;
      k.data = k_cache + first_key * kv_row + kv * head_dim;
      k.rows = keys;
      k.cols = head_dim;
      k.row_stride = kv_row;
      scores.resize(size_t(group * keys));
      const int64_t head0 = t * n_heads + kv * group;
      matmul(q + head0 * head_dim, group, k, scores.data(), nullptr, pool);  // inside the pool: runs here
      for (int64_t g = 0; g < group; ++g) {
        const int64_t head = head0 + g;
        float* o = out + head * head_dim;
        std::fill_n(o, head_dim, 0.0f);
        if (head_mask && !head_mask[head]) continue;
        float* s = scores.data() + g * keys;
        float max = -INFINITY;
        for (int64_t j = 0; j < keys; ++j) {
          s[j] *= scale;
          max = std::max(max, s[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < keys; ++j) {
          s[j] = std::exp(s[j] - max);
          sum += s[j];
        }
        for (int64_t j = 0; j < keys; ++j) {
          const float p = s[j] / sum;
          accumulate(o, p, v_cache + (first_key + j) * kv_row + kv * head_dim, head_dim);
        }
      }
    }
  });
}

}  // namespace moe::cpu
