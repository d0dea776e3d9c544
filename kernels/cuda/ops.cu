#include "kernels/cuda/ops.h"

#include <algorithm>
#include <cfloat>

#include "kernels/cuda/block_reduce.cuh"

namespace moe::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void rms_norm_kernel(const float* x, float* out, int64_t d, const float* weight, float eps) {
  __shared__ float shared[32];
  const float* xr = x + int64_t(blockIdx.x) * d;
  float* orow = out + int64_t(blockIdx.x) * d;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += xr[j] * xr[j];
  const float inv = rsqrtf(block_sum(ss, shared) / float(d) + eps);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) orow[j] = weight ? xr[j] * inv * weight[j] : xr[j] * inv;
}

// Two passes over the row, as the CPU: the mean, then the variance about it.
__global__ void layer_norm_kernel(const float* x, float* out, int64_t d, const float* weight, const float* bias, float eps) {
  __shared__ float shared[32];
  const float* xr = x + int64_t(blockIdx.x) * d;
  float* orow = out + int64_t(blockIdx.x) * d;
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += xr[j];
  const float mean = block_sum(s, shared) / float(d);
  float v = 0.0f;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) v += (xr[j] - mean) * (xr[j] - mean);
  const float inv = 1.0f / sqrtf(block_sum(v, shared) / float(d) + eps);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float y = (xr[j] - mean) * inv;
    if (weight) y *= weight[j];
    if (bias) y += bias[j];
    orow[j] = y;
  }
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t m, int64_t width) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < m * width; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += bias[i % width];
}

__global__ void silu_mul_kernel(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void gelu_kernel(float* x, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

// DS-MoE's expert activation: x[r, i] = gelu_tanh(x[r, i] + bias[i]).
__global__ void bias_gelu_tanh_kernel(float* x, const float* bias, int64_t m, int64_t width) {
  constexpr float kSqrt2OverPi = 0.79788456080286536f;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < m * width; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = x[i] + (bias ? bias[i % width] : 0.0f);
    x[i] = 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

__global__ void rope_kernel(float* x, int64_t n_heads, int64_t head_dim, int64_t rotary_dim, const int64_t* positions,
                            const float* inv_freq, float scaling) {
  const int64_t t = blockIdx.x, half = rotary_dim / 2;
  for (int64_t idx = threadIdx.x; idx < n_heads * half; idx += blockDim.x) {
    const int64_t h = idx / half, i = idx % half;
    const float angle = float(positions[t]) * inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    c *= scaling;
    s *= scaling;
    float* v = x + (t * n_heads + h) * head_dim;
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
  }
}

// One warp's softmax of a row of n logits into p (shared memory), visible to the whole warp.
__device__ void warp_softmax(const float* l, float* p, int n, int lane) {
  float max = -FLT_MAX;
  for (int e = lane; e < n; e += 32) max = fmaxf(max, l[e]);
  for (int o = 16; o > 0; o /= 2) max = fmaxf(max, __shfl_xor_sync(0xffffffffu, max, o));
  float sum = 0.0f;
  for (int e = lane; e < n; e += 32) {
    p[e] = expf(l[e] - max);
    sum += p[e];
  }
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  for (int e = lane; e < n; e += 32) p[e] /= sum;
  __syncwarp();
}

// The token of this block's warp (one warp per token), or -1 past the last.
__device__ int64_t warp_token(int64_t n_tokens) {
  const int64_t t = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  return t < n_tokens ? t : -1;
}

// Token t's router probabilities, softmaxed into the warp's row of dynamic shared memory.
__device__ float* token_probs(const float* logits, int64_t t, int n_experts, int lane) {
  extern __shared__ float probs[];
  float* p = probs + (threadIdx.x / 32) * n_experts;
  warp_softmax(logits + t * n_experts, p, n_experts, lane);
  return p;
}

// One warp per token: softmax, then every expert with p * n > eps; the most probable one (ties
// to the lower index) when none passes.
__global__ void route_threshold_kernel(const float* logits, int64_t n_tokens, int n_experts, float eps, float* weights,
                                       int32_t* counts) {
  const int lane = threadIdx.x % 32;
  const int64_t t = warp_token(n_tokens);
  if (t < 0) return;
  float* p = token_probs(logits, t, n_experts, lane);
  float* w = weights + t * n_experts;
  int count = 0, best_e = n_experts;
  float best = -1.0f;
  for (int e = lane; e < n_experts; e += 32) {
    const bool chosen = p[e] * float(n_experts) > eps;
    w[e] = chosen ? p[e] : 0.0f;
    count += chosen;
    if (p[e] > best) best = p[e], best_e = e;
  }
  for (int o = 16; o > 0; o /= 2) {
    count += __shfl_xor_sync(0xffffffffu, count, o);
    const float ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
    if (ob > best || (ob == best && oe < best_e)) best = ob, best_e = oe;
  }
  __syncwarp();  // every lane's zeros are written before lane 0 may overwrite one
  if (lane == 0) {
    if (count == 0) w[best_e] = best, count = 1;
    counts[t] = count;
  }
}

// One warp per token: softmax over the experts, then k rounds of arg-max.
__global__ void route_kernel(const float* logits, int64_t n_tokens, int n_experts, int k, bool renormalize, int32_t* ids,
                             float* weights) {
  const int lane = threadIdx.x % 32;
  const int64_t t = warp_token(n_tokens);
  if (t < 0) return;
  float* p = token_probs(logits, t, n_experts, lane);
  float chosen_sum = 0.0f;
  for (int r = 0; r < k; ++r) {
    float best = -1.0f;
    int best_e = n_experts;
    for (int e = lane; e < n_experts; e += 32)
      if (p[e] > best) {
        best = p[e];
        best_e = e;
      }
    for (int o = 16; o > 0; o /= 2) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
      if (ob > best || (ob == best && oe < best_e)) {
        best = ob;
        best_e = oe;
      }
    }
    if (lane == 0) {
      ids[t * k + r] = best_e;
      weights[t * k + r] = best;
      chosen_sum += best;
      p[best_e] = -1.0f;
    }
    __syncwarp();
  }
  if (renormalize && lane == 0)
    for (int r = 0; r < k; ++r) weights[t * k + r] /= chosen_sum;
}

__global__ void combine_kernel(const float* expert_out, const int32_t* rows, const float* weights, int k, int64_t hidden,
                               float* out) {
  const int64_t t = blockIdx.x;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < k; ++j) {
      const float product = __fmul_rn(weights[t * k + j], expert_out[int64_t(rows[t * k + j]) * hidden + i]);
      acc = __fadd_rn(acc, product);
    }
    out[t * hidden + i] = acc;
  }
}

unsigned blocks_for(int64_t n) { return unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }

}  // namespace

cudaError_t rms_norm(const float* x, float* out, int64_t m, int64_t d, const float* weight, float eps, cudaStream_t stream) {
  if (m <= 0) return cudaSuccess;
  rms_norm_kernel<<<unsigned(m), kThreads, 0, stream>>>(x, out, d, weight, eps);
  return cudaGetLastError();
}

cudaError_t layer_norm(const float* x, float* out, int64_t m, int64_t d, const float* weight, const float* bias, float eps,
                       cudaStream_t stream) {
  if (m <= 0) return cudaSuccess;
  layer_norm_kernel<<<unsigned(m), kThreads, 0, stream>>>(x, out, d, weight, bias, eps);
  return cudaGetLastError();
}

cudaError_t add_bias(float* y, const float* bias, int64_t m, int64_t width, cudaStream_t stream) {
  if (m <= 0 || width <= 0) return cudaSuccess;
  add_bias_kernel<<<blocks_for(m * width), kThreads, 0, stream>>>(y, bias, m, width);
  return cudaGetLastError();
}

cudaError_t silu_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  silu_mul_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, out, n);
  return cudaGetLastError();
}

cudaError_t gelu(float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  gelu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, n);
  return cudaGetLastError();
}

cudaError_t bias_gelu_tanh(float* x, const float* bias, int64_t m, int64_t width, cudaStream_t stream) {
  if (m <= 0 || width <= 0) return cudaSuccess;
  bias_gelu_tanh_kernel<<<blocks_for(m * width), kThreads, 0, stream>>>(x, bias, m, width);
  return cudaGetLastError();
}

cudaError_t apply_rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t rotary_dim,
                       const int64_t* positions, const float* inv_freq, float scaling, cudaStream_t stream) {
  if (n_tokens <= 0) return cudaSuccess;
  rope_kernel<<<unsigned(n_tokens), kThreads, 0, stream>>>(x, n_heads, head_dim, rotary_dim, positions, inv_freq, scaling);
  return cudaGetLastError();
}

cudaError_t route_top_k(const float* logits, int64_t n_tokens, int n_experts, int k, bool renormalize, int32_t* ids,
                        float* weights, cudaStream_t stream) {
  if (n_tokens <= 0) return cudaSuccess;
  if (n_experts <= 0 || n_experts > 1024 || k <= 0 || k > n_experts) return cudaErrorInvalidValue;
  constexpr int kWarps = 4;
  route_kernel<<<unsigned((n_tokens + kWarps - 1) / kWarps), kWarps * 32, kWarps * n_experts * sizeof(float), stream>>>(
      logits, n_tokens, n_experts, k, renormalize, ids, weights);
  return cudaGetLastError();
}

cudaError_t route_threshold(const float* logits, int64_t n_tokens, int n_experts, float eps, float* weights, int32_t* counts,
                            cudaStream_t stream) {
  if (n_tokens <= 0) return cudaSuccess;
  if (n_experts <= 0 || n_experts > 1024) return cudaErrorInvalidValue;
  constexpr int kWarps = 4;
  route_threshold_kernel<<<unsigned((n_tokens + kWarps - 1) / kWarps), kWarps * 32, kWarps * n_experts * sizeof(float),
                           stream>>>(logits, n_tokens, n_experts, eps, weights, counts);
  return cudaGetLastError();
}

cudaError_t weighted_combine(const float* expert_out, const int32_t* rows, const float* weights, int64_t n_tokens, int k,
                             int64_t hidden, float* out, cudaStream_t stream) {
  if (n_tokens <= 0) return cudaSuccess;
  combine_kernel<<<unsigned(n_tokens), kThreads, 0, stream>>>(expert_out, rows, weights, k, hidden, out);
  return cudaGetLastError();
}

}  // namespace moe::cuda
