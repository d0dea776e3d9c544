#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/core/error.h"

namespace moe::cpu {
namespace {

// Sixteen lanes: one AVX-512 register, two AVX2 ones, four SSE ones (a clone per instruction set).
using Floats16 = float __attribute__((vector_size(64)));

// o[h][d0 ..] = sum over keys j of p[h][j] * v[j][d0 ..] for H heads of a kv group and B blocks
// of 16 columns, key after key with the sums in registers: each output element's adds in key
// order, each product rounded before its add (no fused multiply-add: the build forbids
// contraction), so the bits are those of one head and one key at a time; each value row is read
// once for the group's heads, whole.
constexpr int64_t kValuesAhead = 8;  // value rows asked for ahead of their use

template <int H, int B>
[[gnu::always_inline]] inline void accumulate_block(float* const* o, const float* const* p, const float* const* v,
                                                    int64_t keys, int64_t d0) {
  Floats16 acc[H][B] = {};
  for (int64_t j = 0; j < keys; ++j) {
    if (j + kValuesAhead < keys)  // the rows are a kv row apart, not a stream the hardware follows well
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) __builtin_prefetch(v[j + kValuesAhead] + d0 + 16 * b);
    Floats16 vj[B];
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) std::memcpy(&vj[b], v[j] + d0 + 16 * b, sizeof(Floats16));
#pragma GCC unroll 4
    for (int h = 0; h < H; ++h) {
      const float ph = p[h][j];
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) acc[h][b] += ph * vj[b];
    }
  }
  for (int h = 0; h < H; ++h)
    for (int b = 0; b < B; ++b) std::memcpy(o[h] + d0 + 16 * b, &acc[h][b], sizeof(Floats16));
}

template <int B>
[[gnu::always_inline]] inline void accumulate_heads(int heads, float* const* o, const float* const* p, const float* const* v, int64_t keys,
                             int64_t d0) {
  switch (heads) {
    case 4: return accumulate_block<4, B>(o, p, v, keys, d0);
    case 3: return accumulate_block<3, B>(o, p, v, keys, d0);
    case 2: return accumulate_block<2, B>(o, p, v, keys, d0);
    default: return accumulate_block<1, B>(o, p, v, keys, d0);
  }
}

// o[h] = sum over keys j of p[h][j] * v[j] (o zeroed by the caller), heads four at a time, 64
// columns a pass, then 16, then one.
__attribute__((target_clones("avx512f", "avx2", "default"))) void accumulate_values(float* const* o, const float* const* p,
                                                                                    int heads, const float* const* v,
                                                                                    int64_t keys, int64_t n) {
  for (int h0 = 0; h0 < heads; h0 += 4) {
    const int hn = std::min(4, heads - h0);
    int64_t d = 0;
    for (; d + 64 <= n; d += 64) accumulate_heads<4>(hn, o + h0, p + h0, v, keys, d);
    for (; d + 16 <= n; d += 16) accumulate_heads<1>(hn, o + h0, p + h0, v, keys, d);
    for (int h = h0; h < h0 + hn; ++h)  // a head size not a multiple of 16
      for (int64_t j = 0; j < keys; ++j)
        for (int64_t e = d; e < n; ++e) o[h][e] += p[h][j] * v[j][e];
  }
}

// The physical row of token j, and how many tokens from j on are consecutive rows (to the end
// of its run of consecutive blocks, at most `limit`).
struct RowRun {
  int64_t row, length;
};
RowRun row_run(const KvBlocks& kv, int64_t j, int64_t limit) {
  if (!kv.table) return {j, limit};
  const int64_t bt = kv.block_tokens;
  int64_t b = j / bt;
  const int64_t row = int64_t(kv.table[b]) * bt + j % bt;
  int64_t length = bt - j % bt;
  while (length < limit && kv.table[b + 1] == kv.table[b] + 1) {
    ++b;
    length += bt;
  }
  return {row, std::min(length, limit)};
}

}  // namespace

void attention(const float* q, const KvBlocks& kv, int64_t n_tokens, int64_t first_position, int64_t n_heads,
               int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t sliding_window,
               const uint8_t* head_mask, const float* sinks) {
  const AttentionSequence one{q, kv, n_tokens, first_position, out, head_mask};
  attention(std::span(&one, 1), n_heads, n_kv_heads, head_dim, scale, sliding_window, sinks);
}

void attention(std::span<const AttentionSequence> sequences, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale,
               int64_t sliding_window, const float* sinks) {
  MOE_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, ErrorCode::kInvalidArgument,
            "attention: {} heads cannot share {} kv heads", n_heads, n_kv_heads);
  const int64_t group = n_heads / n_kv_heads;
  const int64_t kv_row = n_kv_heads * head_dim;
  // Jobs numbered sequence after sequence: first_job[i] is sequence i's first.
  std::vector<int64_t> first_job(sequences.size() + 1, 0);
  for (size_t i = 0; i < sequences.size(); ++i) {
    const KvBlocks& kv = sequences[i].kv;
    MOE_CHECK(!kv.table || kv.block_tokens > 0, ErrorCode::kInvalidArgument, "attention: a block table needs a block size");
    first_job[i + 1] = first_job[i] + sequences[i].n_tokens * n_kv_heads;
  }
  ThreadPool& pool = ThreadPool::global();
  // One job per (sequence, token, kv head): the query heads that share the kv head score every
  // key in view with one matmul per run of consecutive rows (the 32-lane dot products of
  // matmul.h: the same bits on every instruction set and for any split of the keys).
  pool.parallel_for(first_job.back(), [&](int64_t begin, int64_t end) {
    std::vector<float> scores, run_scores;
    std::vector<const float*> value_rows, probabilities;
    std::vector<float*> outputs;
    size_t i = size_t(std::upper_bound(first_job.begin(), first_job.end(), begin) - first_job.begin()) - 1;
    for (int64_t job = begin; job < end; ++job) {
      while (job >= first_job[i + 1]) ++i;
      const AttentionSequence& seq = sequences[i];
      const KvBlocks& kv = seq.kv;
      const float* q = seq.q;
      float* out = seq.out;
      const uint8_t* head_mask = seq.head_mask;
      const int64_t t = (job - first_job[i]) / n_kv_heads, kv_head = (job - first_job[i]) % n_kv_heads;
      const int64_t position = seq.first_position + t;
      const int64_t first_key = sliding_window > 0 ? std::max<int64_t>(0, position - sliding_window + 1) : 0;
      const int64_t keys = position + 1 - first_key;
      scores.resize(size_t(group * keys));
      value_rows.resize(size_t(keys));
      const int64_t head0 = t * n_heads + kv_head * group;
      for (int64_t j = 0; j < keys;) {
        const RowRun run = row_run(kv, first_key + j, keys - j);
        WeightMatrix k;
        k.data = kv.keys + run.row * kv_row + kv_head * head_dim;
        k.rows = run.length;
        k.cols = head_dim;
        k.row_stride = kv_row;
        const bool whole = run.length == keys;
        if (!whole) run_scores.resize(size_t(group * run.length));
        float* s = whole ? scores.data() : run_scores.data();
        matmul(q + head0 * head_dim, group, k, s, nullptr, pool);  // inside the pool: runs here
        if (!whole)
          for (int64_t g = 0; g < group; ++g) std::copy_n(s + g * run.length, run.length, scores.data() + g * keys + j);
        for (int64_t r = 0; r < run.length; ++r)
          value_rows[size_t(j + r)] = kv.values + (run.row + r) * kv_row + kv_head * head_dim;
        j += run.length;
      }
      outputs.clear();
      probabilities.clear();
      for (int64_t g = 0; g < group; ++g) {
        const int64_t head = head0 + g;
        float* o = out + head * head_dim;
        std::fill_n(o, head_dim, 0.0f);
        if (head_mask && !head_mask[head]) continue;
        float* s = scores.data() + g * keys;
        const float sink = sinks ? sinks[kv_head * group + g] : -INFINITY;
        float max = sink;
        for (int64_t j = 0; j < keys; ++j) {
          s[j] *= scale;
          max = std::max(max, s[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < keys; ++j) {
          s[j] = std::exp(s[j] - max);
          sum += s[j];
        }
        if (sinks) sum += std::exp(sink - max);  // the sink's share of the softmax, given to no value
        for (int64_t j = 0; j < keys; ++j) s[j] /= sum;
        outputs.push_back(o);
        probabilities.push_back(s);
      }
      accumulate_values(outputs.data(), probabilities.data(), int(outputs.size()), value_rows.data(), keys, head_dim);
    }
  });
}

}  // namespace moe::cpu
