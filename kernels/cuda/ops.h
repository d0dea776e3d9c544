#pragma once
// The CUDA versions of kernels/cpu's row operations, f32 activations. Each launcher returns the
// launch's CUDA error; callers check it. Pointers are device memory.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::cuda {

// out = x * rsqrt(mean(x^2) + eps) * weight, per row of d. out may alias x.
cudaError_t rms_norm(const float* x, float* out, int64_t m, int64_t d, const float* weight, float eps, cudaStream_t stream);
// out = (x - mean) * rsqrt(var + eps) * weight + bias per row of d (weight, bias may be null).
cudaError_t layer_norm(const float* x, float* out, int64_t m, int64_t d, const float* weight, const float* bias, float eps,
                       cudaStream_t stream);
// y [m, width] += bias [width] (a linear layer's bias after its GEMV or GEMM).
cudaError_t add_bias(float* y, const float* bias, int64_t m, int64_t width, cudaStream_t stream);
// out = silu(gate) * up.
cudaError_t silu_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream);
// x = gelu(x), exact erf form.
cudaError_t gelu(float* x, int64_t n, cudaStream_t stream);
// x [m, width] = gelu_tanh(x + bias) (bias [width], or none when null): DS-MoE's GeLU experts.
cudaError_t bias_gelu_tanh(float* x, const float* bias, int64_t m, int64_t width, cudaStream_t stream);
// Rotate-half RoPE on x [n_tokens, n_heads, head_dim] with inv_freq [rotary_dim / 2] (device).
cudaError_t apply_rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t rotary_dim,
                       const int64_t* positions, const float* inv_freq, float attention_scaling, cudaStream_t stream);
// Per token: softmax over n_experts logits, then the top k (descending, ties to the lower index),
// optionally renormalised. ids/weights: [n_tokens, k]. n_experts <= 1024.
cudaError_t route_top_k(const float* logits, int64_t n_tokens, int n_experts, int k, bool renormalize, int32_t* ids,
                        float* weights, cudaStream_t stream);
// DS-MoE's threshold routing: per token, softmax, then the experts with p * n_experts > eps
// (the most probable one when none passes), as kernels/cpu/router.h selects them. weights
// [n_tokens, n_experts]: the chosen experts' probabilities, 0 elsewhere; counts [n_tokens].
cudaError_t route_threshold(const float* logits, int64_t n_tokens, int n_experts, float eps, float* weights, int32_t* counts,
                            cudaStream_t stream);
// out[t] = sum_j weights[t, j] * expert_out[offsets... ] : for token t, rows
// expert_rows[t * k + j] of expert_out, combined in j order (each product rounded, then added).
cudaError_t weighted_combine(const float* expert_out, const int32_t* expert_rows, const float* weights, int64_t n_tokens, int k,
                             int64_t hidden, float* out, cudaStream_t stream);

}  // namespace moe::cuda
