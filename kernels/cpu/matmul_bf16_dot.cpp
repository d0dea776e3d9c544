// The bf16-activation mode's rounding of the activations and its portable path, which defines
// the bits (matmul_bf16_dot.h).
#include "kernels/cpu/matmul_bf16_dot.h"

#include <cpuid.h>

#include <bit>
#include <cmath>
#include <cstring>

namespace moe::cpu::detail {
namespace {

constexpr int kBlock = 32;

// A zero of its sign when subnormal (or zero), else the value.
float flushed(float v) {
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  return (bits & 0x7F800000u) == 0 ? std::bit_cast<float>(bits & 0x80000000u) : v;
}

// x as bf16 bits: round to nearest even; subnormals to a zero of their sign; NaN stays a quiet NaN.
uint16_t to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(flushed(x));
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((bits >> 16) | 0x0040u);
  return uint16_t((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

float from_bf16(uint16_t h) { return flushed(std::bit_cast<float>(uint32_t(h) << 16)); }

}  // namespace

bool takes_bf16_dot(const WeightMatrix& w) { return w.dtype == DType::kBF16; }

bool cpu_has_avx512_bf16() {
  // Asked once: under a hypervisor every cpuid is a trip to it.
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return cpu_has_avx512() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));  // CPUID.(7,1):EAX.AVX512_BF16
  }();
  return has;
}

void prepare_bf16_activations(const MatmulJob& job, Bf16Activations& a) {
  const WeightMatrix& w = *job.w;
  a.m = job.m;
  a.blocks = (w.cols + kBlock - 1) / kBlock;
  const int64_t padded = a.blocks * kBlock;
  auto* x = reinterpret_cast<uint16_t*>(a.storage.get(size_t(a.m * padded / 2)));
  for (int64_t t = 0; t < a.m; ++t) {
    const float* src = job.x + t * w.cols;
    uint16_t* dst = x + t * padded;
    for (int64_t c = 0; c < w.cols; ++c) dst[c] = to_bf16(src[c]);
    std::memset(dst + w.cols, 0, size_t(padded - w.cols) * sizeof(uint16_t));
  }
  a.x = x;
}

void rows_bf16_dot_portable(const MatmulJob& job, const Bf16Activations& a, int64_t r0, int64_t r1) {
  const WeightMatrix& w = *job.w;
  const auto* weights = static_cast<const uint16_t*>(w.data);
  const auto weight = [&](int64_t r, int64_t c) { return c < w.cols ? from_bf16(weights[r * w.stride() + c]) : 0.0f; };
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < job.m; ++t) {
      const uint16_t* x = a.row(t);
      float lanes[16] = {};
      for (int64_t b = 0; b < a.blocks; ++b)
        for (int l = 0; l < 16; ++l) {
          const int64_t even = b * kBlock + 2 * l, odd = even + 1;
          const float after_odd = flushed(std::fma(from_bf16(x[odd]), weight(r, odd), lanes[l]));
          lanes[l] = flushed(std::fma(from_bf16(x[even]), weight(r, even), after_odd));
        }
      float sum = reduce_sixteen(lanes);
      if (job.bias) sum += job.bias[r];
      job.y[t * w.rows + r] = sum;
    }
}

}  // namespace moe::cpu::detail
