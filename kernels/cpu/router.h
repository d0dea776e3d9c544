#pragma once
// Router math on one row of expert scores.
#include <cstdint>
#include <vector>

namespace moe::cpu {

// In place, f32, subtracting the maximum first.
void softmax(float* x, int64_t n);
void softmax_rows(float* x, int64_t m, int64_t n);
// The k largest scores in descending order; ties go to the lower index.
void top_k(const float* scores, int64_t n, int k, int32_t* ids, float* values);
// DS-MoE's threshold routing: experts with p * n > eps, in index order (the count varies).
void threshold_select(const float* probs, int64_t n, float eps, std::vector<int32_t>& ids, std::vector<float>& values);
// w /= sum(w), summed in the order given.
void renormalize(float* w, int k);

}  // namespace moe::cpu
