#include "kernels/cpu/matmul.h"

#include <cpuid.h>
#include <immintrin.h>

#include <atomic>
#include <cmath>
#include <cstring>

#include "kernels/cpu/thread_pool.h"
#include "runtime/core/error.h"

namespace moe::cpu {
namespace {

constexpr int kLanes = 32;      // four 8-wide accumulators: enough independent FMA chains
constexpr int kTokenBlock = 2;  // tokens that share one pass over a weight row

bool cpu_has_avx2() {
  __builtin_cpu_init();
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);  // not every compiler's builtin knows f16c
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}

std::atomic<Isa>& isa_state() {
  static std::atomic<Isa> isa{cpu_has_avx2() ? Isa::kAvx2 : Isa::kPortable};
  return isa;
}

// The fixed lane tree shared by both paths: the four 8-wide accumulators are added lane-wise,
// then the eight lanes pairwise.
inline float reduce_lanes(const float* l) {
  float v[8];
  for (int i = 0; i < 8; ++i) v[i] = (l[i] + l[8 + i]) + (l[16 + i] + l[24 + i]);
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

// Weight element c of a row, widened (and dequantised) to f32.
inline float weight_at(const WeightMatrix& w, int64_t row, int64_t c) {
  const int64_t i = row * w.cols + c;
  switch (w.dtype) {
    case DType::kF32: return static_cast<const float*>(w.data)[i];
    case DType::kBF16: return bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kI8: {
      const float scale = w.scales[(row * w.cols + c) / w.group_size];
      return float(static_cast<const int8_t*>(w.data)[i]) * scale;
    }
    case DType::kI4: {
      const uint8_t byte = static_cast<const uint8_t*>(w.data)[i / 2];
      const int nibble = (i & 1) ? (byte >> 4) : (byte & 0xF);
      const float scale = w.scales[(row * w.cols + c) / w.group_size];
      return float((nibble ^ 8) - 8) * scale;
    }
    default: return 0.0f;
  }
}

// Portable path: the same lane assignment and fused multiply-adds as the AVX2 path.
void rows_portable(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, int64_t r0, int64_t r1) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) row[size_t(c)] = weight_at(w, r, c);
    for (int64_t t = 0; t < m; ++t) {
      float lanes[kLanes] = {};
      const float* xt = x + t * w.cols;
      for (int64_t c = 0; c < w.cols; ++c) lanes[c % kLanes] = std::fma(xt[c], row[size_t(c)], lanes[c % kLanes]);
      float sum = reduce_lanes(lanes);
      if (bias) sum += bias[r];
      y[t * w.rows + r] = sum;
    }
  }
}

// ---- AVX2 path ----

__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const WeightMatrix& w, int64_t row, int64_t c) {
  const int64_t i = row * w.cols + c;
  switch (w.dtype) {
    case DType::kF32: return _mm256_loadu_ps(static_cast<const float*>(w.data) + i);
    case DType::kBF16: {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w.data) + i));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case DType::kF16: {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w.data) + i));
      return _mm256_cvtph_ps(h);
    }
    case DType::kI8: {
      int64_t q8;
      std::memcpy(&q8, static_cast<const int8_t*>(w.data) + i, 8);
      const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(q8)));
      return _mm256_mul_ps(q, _mm256_set1_ps(w.scales[i / w.group_size]));
    }
    case DType::kI4: {
      uint32_t packed;
      std::memcpy(&packed, static_cast<const uint8_t*>(w.data) + i / 2, 4);
      const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
      __m256i v = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(packed)), shifts), _mm256_set1_epi32(0xF));
      v = _mm256_sub_epi32(_mm256_xor_si256(v, _mm256_set1_epi32(8)), _mm256_set1_epi32(8));
      return _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(w.scales[i / w.group_size]));
    }
    default: return _mm256_setzero_ps();
  }
}

__attribute__((target("avx2,fma,f16c"))) void rows_avx2(const float* x, int64_t m, const WeightMatrix& w, float* y,
                                                      const float* bias, int64_t r0, int64_t r1) {
  const int64_t full = w.cols / kLanes * kLanes;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t0 = 0; t0 < m; t0 += kTokenBlock) {
      const int64_t tn = std::min<int64_t>(kTokenBlock, m - t0);
      __m256 acc[kTokenBlock][4];
      for (auto& a : acc)
        for (auto& v : a) v = _mm256_setzero_ps();
      for (int64_t c = 0; c < full; c += kLanes) {
        const __m256 w0 = load8(w, r, c), w1 = load8(w, r, c + 8), w2 = load8(w, r, c + 16), w3 = load8(w, r, c + 24);
        for (int64_t t = 0; t < tn; ++t) {
          const float* xt = x + (t0 + t) * w.cols + c;
          acc[t][0] = _mm256_fmadd_ps(_mm256_loadu_ps(xt), w0, acc[t][0]);
          acc[t][1] = _mm256_fmadd_ps(_mm256_loadu_ps(xt + 8), w1, acc[t][1]);
          acc[t][2] = _mm256_fmadd_ps(_mm256_loadu_ps(xt + 16), w2, acc[t][2]);
          acc[t][3] = _mm256_fmadd_ps(_mm256_loadu_ps(xt + 24), w3, acc[t][3]);
        }
      }
      for (int64_t t = 0; t < tn; ++t) {
        alignas(32) float lanes[kLanes];
        for (int j = 0; j < 4; ++j) _mm256_store_ps(lanes + 8 * j, acc[t][j]);
        const float* xt = x + (t0 + t) * w.cols;
        for (int64_t c = full; c < w.cols; ++c) lanes[c % kLanes] = std::fma(xt[c], weight_at(w, r, c), lanes[c % kLanes]);
        float sum = reduce_lanes(lanes);
        if (bias) sum += bias[r];
        y[(t0 + t) * w.rows + r] = sum;
      }
    }
  }
}

void check(const WeightMatrix& w) {
  MOE_CHECK(w.data != nullptr && w.rows > 0 && w.cols > 0, ErrorCode::kInvalidArgument, "matmul: empty weight matrix");
  if (w.dtype == DType::kI8 || w.dtype == DType::kI4) {
    MOE_CHECK(w.scales != nullptr && w.group_size > 0 && w.group_size % 8 == 0 && w.cols % w.group_size == 0,
              ErrorCode::kInvalidArgument,
              "matmul: quantised weights need scales and a group size that is a multiple of 8 dividing {} columns",
              w.cols);
  } else {
    MOE_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16, ErrorCode::kUnsupported,
              "matmul: weights of dtype {} are not supported", dtype_name(w.dtype));
  }
}

}  // namespace

Isa active_isa() { return isa_state().load(); }

void set_isa(Isa isa) { isa_state().store(isa == Isa::kAvx2 && cpu_has_avx2() ? Isa::kAvx2 : Isa::kPortable); }

WeightMatrix weight_matrix(const Tensor& t) {
  MOE_CHECK(t.rank() == 2 && t.is_contiguous(), ErrorCode::kInvalidArgument,
            "a weight matrix must be a contiguous 2-D tensor, not {}", shape_to_string(t.shape()));
  WeightMatrix w;
  w.data = t.raw();
  w.dtype = t.dtype();
  w.rows = t.dim(0);
  w.cols = t.dim(1);
  return w;
}

void matmul(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, ThreadPool& pool) {
  check(w);
  if (m <= 0) return;
  const bool avx2 = active_isa() == Isa::kAvx2;
  // Enough rows per chunk that threads do not fight over tiny pieces.
  const int64_t min_rows = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, w.cols * m));
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(pool.size(), w.rows / min_rows));
  pool.parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    const int64_t r0 = w.rows * c0 / chunks, r1 = w.rows * c1 / chunks;
    if (avx2) {
      rows_avx2(x, m, w, y, bias, r0, r1);
    } else {
      rows_portable(x, m, w, y, bias, r0, r1);
    }
  });
}

void matmul(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias) {
  matmul(x, m, w, y, bias, ThreadPool::global());
}

void row_to_f32(const WeightMatrix& w, int64_t row, float* out) {
  check(w);
  MOE_CHECK(row >= 0 && row < w.rows, ErrorCode::kInvalidArgument, "row {} is outside a matrix of {} rows", row, w.rows);
  for (int64_t c = 0; c < w.cols; ++c) out[c] = weight_at(w, row, c);
}

}  // namespace moe::cpu
