#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "runtime/core/error.h"

namespace moe::cpu {

void attention(const float* q, const float* k_cache, const float* v_cache, int64_t n_tokens, int64_t first_position,
               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t sliding_window,
               const uint8_t* head_mask) {
  MOE_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, ErrorCode::kInvalidArgument,
            "attention: {} heads cannot share {} kv heads", n_heads, n_kv_heads);
  const int64_t group = n_heads / n_kv_heads;
  const int64_t kv_row = n_kv_heads * head_dim;
  ThreadPool::global().parallel_for(n_tokens * n_heads, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / n_heads, h = job % n_heads, kv = h / group;
      if (head_mask && !head_mask[job]) {
        std::fill_n(out + job * head_dim, head_dim, 0.0f);
        continue;
      }
      const int64_t position = first_position + t;
      const int64_t first_key = sliding_window > 0 ? std::max<int64_t>(0, position - sliding_window + 1) : 0;
      const float* qv = q + (t * n_heads + h) * head_dim;
      scores.assign(size_t(position + 1 - first_key), 0.0f);
      float max = -INFINITY;
      for (int64_t j = first_key; j <= position; ++j) {
        const float* kj = k_cache + j * kv_row + kv * head_dim;
        float dot = 0.0f;
        for (int64_t d = 0; d < head_dim; ++d) dot += qv[d] * kj[d];
        const float s = dot * scale;
        scores[size_t(j - first_key)] = s;
        max = std::max(max, s);
      }
      float sum = 0.0f;
      for (float& s : scores) {
        s = std::exp(s - max);
        sum += s;
      }
      float* o = out + (t * n_heads + h) * head_dim;
      std::fill_n(o, head_dim, 0.0f);
      for (int64_t j = first_key; j <= position; ++j) {
        const float p = scores[size_t(j - first_key)] / sum;
        const float* vj = v_cache + j * kv_row + kv * head_dim;
        for (int64_t d = 0; d < head_dim; ++d) o[d] += p * vj[d];
      }
    }
  });
}

}  // namespace moe::cpu
