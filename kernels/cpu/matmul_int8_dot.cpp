// The int8-activation mode's quantisation of the activations and its portable path, which
// defines the bits (matmul_int8_dot.h).
#include "kernels/cpu/matmul_int8_dot.h"

#include <cpuid.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/thread_pool.h"

namespace moe::cpu::detail {
namespace {

constexpr int kBlock = 32;

int lane_cols_of(DType dtype) { return dtype == DType::kI4 ? 8 : 4; }

}  // namespace

bool takes_int8_dot(const WeightMatrix& w) {
  return (w.dtype == DType::kI8 || w.dtype == DType::kI4) && w.group_size % kBlock == 0;  // rows never strided (matmul's check)
}

bool cpu_has_avx512_vnni() {
  // Asked once: under a hypervisor every cpuid is a trip to it (microseconds, a matmul's worth).
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return cpu_has_avx512() && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & bit_AVX512VNNI);
  }();
  return has;
}

void prepare_int8_activations(const MatmulJob& job, Int8Activations& a, ThreadPool& pool) {
  const WeightMatrix& w = *job.w;
  a.m = job.m;
  a.blocks = w.cols / kBlock;
  a.lane_cols = lane_cols_of(w.dtype);
  const int64_t span_cols = 16 * a.lane_cols;
  a.spans = (w.cols + span_cols - 1) / span_cols;
  const int64_t padded = a.spans * span_cols;
  a.q.assign(size_t(a.m * padded), 0);
  a.scale.assign(size_t(a.m * a.blocks), 0.0f);
  a.records = reinterpret_cast<std::byte*>(a.storage.get(size_t(a.m * a.spans * Int8Activations::kRecordBytes / 4)));
  std::memset(a.records, 0, size_t(a.m * a.spans * Int8Activations::kRecordBytes));
  // Token by token (each token's blocks and records are its own), over the threads for a batch:
  // a prefill's activations took a fifth of its int8-activation products on one thread.
  const bool vector = active_isa() == Isa::kAvx512 && cpu_has_avx512_vnni();  // the path whose rows these feed
  const auto token = [&](int64_t t) {
    for (int64_t b = 0; b < a.blocks; ++b) {
      const float* x = job.x + t * w.cols + b * kBlock;
      if (vector) {
        quantise_block_avx512(x, &a.scale[size_t(t * a.blocks + b)], a.q.data() + t * padded + b * kBlock);
        continue;
      }
      float amax = 0.0f;
      bool finite = true;
      for (int i = 0; i < kBlock; ++i) {
        finite = finite && std::isfinite(x[i]);
        amax = std::max(amax, std::fabs(x[i]));
      }
      a.scale[size_t(t * a.blocks + b)] = finite ? amax / 127.0f : std::numeric_limits<float>::quiet_NaN();
      if (!finite || amax == 0.0f) continue;
      const float inv = 127.0f / amax;
      int8_t* q = a.q.data() + t * padded + b * kBlock;
      // Round half to even by the f32 adder (|x * inv| <= 127.5 is far below 2^22): what nearbyint
      // gives under the default rounding mode, without a library call an element.
      constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
      for (int i = 0; i < kBlock; ++i) q[i] = int8_t(std::clamp(int((x[i] * inv + kRound) - kRound), -127, 127));
    }
    // The vector paths' records.
    for (int64_t s = 0; s < a.spans; ++s) {
      std::byte* rec = a.records + (t * a.spans + s) * Int8Activations::kRecordBytes;
      const int8_t* q = a.q.data() + t * padded + s * span_cols;
      auto* bytes = reinterpret_cast<uint8_t*>(rec);
      auto* lane_bias = reinterpret_cast<int32_t*>(rec + 128);
      auto* lane_scale = reinterpret_cast<float*>(rec + 192);
      for (int l = 0; l < 16; ++l) {
        const int64_t b = (s * span_cols + l * a.lane_cols) / kBlock;
        lane_scale[l] = b < a.blocks ? a.scale[size_t(t * a.blocks + b)] : 0.0f;
      }
      if (a.lane_cols == 8) {  // int4: lane l's columns 8l..8l+7, even ones at bytes 4l.., odd ones 64 on
        for (int l = 0; l < 16; ++l) {
          int32_t sum = 0;
          for (int i = 0; i < 4; ++i) {
            bytes[4 * l + i] = uint8_t(q[8 * l + 2 * i]);
            bytes[64 + 4 * l + i] = uint8_t(q[8 * l + 2 * i + 1]);
            sum += q[8 * l + 2 * i] + q[8 * l + 2 * i + 1];
          }
          lane_bias[l] = -8 * sum;
        }
      } else {  // int8: q in column order, lane l's columns 4l..4l+3
        for (int l = 0; l < 16; ++l) {
          int32_t sum = 0;
          for (int i = 0; i < 4; ++i) {
            bytes[4 * l + i] = uint8_t(q[4 * l + i]);
            sum += q[4 * l + i];
          }
          lane_bias[l] = -128 * sum;
        }
      }
    }
  };
  constexpr int64_t kParallelFrom = 1 << 15;  // values: below, the hand-off costs more than it saves
  if (a.m > 1 && a.m * w.cols >= kParallelFrom) {
    pool.parallel_for(a.m, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) token(t);
    });
  } else {
    for (int64_t t = 0; t < a.m; ++t) token(t);
  }
}

void rows_int8_dot_portable(const MatmulJob& job, const Int8Activations& a, int64_t r0, int64_t r1) {
  const WeightMatrix& w = *job.w;
  const int64_t span_cols = 16 * a.lane_cols, padded = a.spans * span_cols, groups = w.cols / w.group_size;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < job.m; ++t) {
      float lanes[16] = {};
      const int8_t* q = a.q.data() + t * padded;
      for (int64_t s = 0; s < a.spans; ++s)
        for (int l = 0; l < 16; ++l) {
          const int64_t c0 = s * span_cols + l * a.lane_cols, b = c0 / kBlock;
          int32_t d = 0;
          float sc = 0.0f;
          if (b < a.blocks) {
            for (int64_t c = c0; c < c0 + a.lane_cols; ++c) {
              d += quantized_at(w, r * w.cols + c) * q[c];
            }
            sc = w.scales[r * groups + b * kBlock / w.group_size] * a.scale[size_t(t * a.blocks + b)];
          }
          lanes[l] = std::fma(float(d), sc, lanes[l]);
        }
      float sum = reduce_sixteen(lanes);
      if (job.bias) sum += job.bias[r];
      job.y[t * w.rows + r] = sum;
    }
}

}  // namespace moe::cpu::detail
