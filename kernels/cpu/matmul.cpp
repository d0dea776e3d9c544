#include "kernels/cpu/matmul.h"

#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/matmul_bf16_dot.h"
#include "kernels/cpu/matmul_int8_dot.h"
#include "kernels/cpu/matmul_paths.h"
#include "kernels/cpu/mxfp4.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/core/error.h"

namespace moe::cpu {
namespace detail {

bool cpu_has_avx2() {
  __builtin_cpu_init();
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);  // not every compiler's builtin knows f16c
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

// Portable path: the same lane assignment and fused multiply-adds as the vector paths.
void rows_portable(const MatmulJob& job, int64_t r0, int64_t r1) {
  const WeightMatrix& w = *job.w;
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) row[size_t(c)] = weight_at(w, r, c);
    for (int64_t t = 0; t < job.m; ++t) {
      float lanes[kLanes] = {};
      const float* xt = job.x + t * w.cols;
      for (int64_t c = 0; c < w.cols; ++c) lanes[c % kLanes] = std::fma(xt[c], row[size_t(c)], lanes[c % kLanes]);
      float sum = reduce_lanes(lanes);
      if (job.bias) sum += job.bias[r];
      job.y[t * w.rows + r] = sum;
    }
  }
}

}  // namespace detail

namespace {

Isa best_isa() {
  static const Isa best = detail::cpu_has_avx512() ? Isa::kAvx512 : detail::cpu_has_avx2() ? Isa::kAvx2 : Isa::kPortable;
  return best;
}

// The best the CPU has, or MOE_ISA (portable, avx2, avx512) where it asks for less.
Isa initial_isa() {
  const char* env = std::getenv("MOE_ISA");
  if (!env || !*env) return best_isa();
  const std::string_view v = env;
  if (v != "portable" && v != "avx2" && v != "avx512") {
    spdlog::warn("MOE_ISA={} is not portable, avx2 or avx512: using {}", v, isa_name(best_isa()));
    return best_isa();
  }
  const Isa asked = v == "portable" ? Isa::kPortable : v == "avx2" ? Isa::kAvx2 : Isa::kAvx512;
  return int(asked) < int(best_isa()) ? asked : best_isa();
}

std::atomic<Isa>& isa_state() {
  static std::atomic<Isa> isa{initial_isa()};
  return isa;
}

std::atomic<Activations> activation_mode{Activations::kExact};

void check(const WeightMatrix& w) {
  MOE_CHECK(w.data != nullptr && w.rows > 0 && w.cols > 0, ErrorCode::kInvalidArgument, "matmul: empty weight matrix");
  MOE_CHECK(w.row_stride == 0 || (w.row_stride >= w.cols && w.dtype != DType::kI8 && w.dtype != DType::kI4 &&
                                  w.dtype != DType::kMxfp4),
            ErrorCode::kInvalidArgument, "matmul: a row stride of {} does not fit rows of {} {} columns", w.row_stride,
            w.cols, dtype_name(w.dtype));
  if (w.dtype == DType::kI8 || w.dtype == DType::kI4) {
    MOE_CHECK(w.scales != nullptr && w.group_size > 0 && w.group_size % 8 == 0 && w.cols % w.group_size == 0,
              ErrorCode::kInvalidArgument,
              "matmul: quantised weights need scales and a group size that is a multiple of 8 dividing {} columns",
              w.cols);
  } else if (w.dtype == DType::kMxfp4) {
    MOE_CHECK(w.exponents != nullptr && w.cols % kMxfp4Block == 0, ErrorCode::kInvalidArgument,
              "matmul: MXFP4 weights need their e8m0 scales and a multiple of 32 columns, not {}", w.cols);
  } else if (w.dtype == DType::kF8E4M3) {
    MOE_CHECK(w.block_scales != nullptr && w.block_rows > 0 && w.block_cols > 0 && w.block_stride > 0 && w.block_row0 >= 0 &&
                  w.block_col0 >= 0 && fp8_blocks(w.cols + w.block_col0, w.block_cols) <= w.block_stride,
              ErrorCode::kInvalidArgument, "matmul: FP8 weights need their block scales and a block grid covering {} columns",
              w.cols);
  } else {
    MOE_CHECK(w.dtype == DType::kF32 || w.dtype == DType::kBF16 || w.dtype == DType::kF16, ErrorCode::kUnsupported,
              "matmul: weights of dtype {} are not supported", dtype_name(w.dtype));
  }
}

// Row `row` widened to f32, exactly.
void widen_row(const WeightMatrix& w, int64_t row, float* out) {
  if (w.dtype == DType::kMxfp4)
    return mxfp4_dequantize_row(static_cast<const uint8_t*>(w.data) + row * (w.cols / 2),
                                w.exponents + row * (w.cols / kMxfp4Block), w.cols, out);
  if (w.dtype == DType::kF8E4M3) return fp8_dequantize_row(w, row, out);
  for (int64_t c = 0; c < w.cols; ++c) out[c] = detail::weight_at(w, row, c);
}

// Below this many multiply-adds a hand-off to the other threads costs more than it saves.
constexpr int64_t kParallelFrom = 1 << 16;
constexpr int64_t kRowAlign = 4;  // row chunks start on whole register tiles

template <class Rows>
void split_rows(const detail::MatmulJob& job, ThreadPool& pool, const Rows& rows) {
  const WeightMatrix& w = *job.w;
  const int64_t work = w.rows * w.cols * job.m;
  const int64_t chunks = work < kParallelFrom ? 1 : std::min<int64_t>(pool.size(), (w.rows + kRowAlign - 1) / kRowAlign);
  if (chunks <= 1) return rows(0, w.rows);
  pool.parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    const auto edge = [&](int64_t c) { return std::min(w.rows, (w.rows * c / chunks + kRowAlign - 1) / kRowAlign * kRowAlign); };
    const int64_t r0 = edge(c0), r1 = edge(c1);
    if (r0 < r1) rows(r0, r1);
  });
}

}  // namespace

Isa active_isa() { return isa_state().load(); }

namespace {
thread_local int activation_override = -1;  // ScopedActivations: this thread's mode, else -1
}  // namespace

Activations activations() {
  return activation_override >= 0 ? Activations(activation_override) : activation_mode.load();
}
ScopedActivations::ScopedActivations(Activations mode) : before_(activation_override) { activation_override = int(mode); }
ScopedActivations::~ScopedActivations() { activation_override = before_; }
void set_activations(Activations mode) { activation_mode.store(mode); }
bool cpu_has_int8_dot() { return detail::cpu_has_avx512_vnni(); }
bool cpu_has_bf16_dot() { return detail::cpu_has_avx512_bf16(); }

std::string_view activations_name(Activations mode) {
  switch (mode) {
    case Activations::kExact: return "exact";
    case Activations::kInt8: return "int8";
    case Activations::kBf16: return "bf16";
  }
  return "?";
}

void set_isa(Isa isa) { isa_state().store(int(isa) <= int(best_isa()) ? isa : best_isa()); }

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kPortable: return "portable";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

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

namespace {

// A job's activations made ready for its path (quantised, rounded or laid out) and how its rows
// then run. Several jobs of one x whose matrices take the same preparation share one (same_input).
struct Prepared {
  enum class Path { kInt8Vnni, kInt8Portable, kBf16Avx512, kBf16Portable, kWidened, kAvx512, kAvx2, kPortable } path;
  const void* input = nullptr;  // the path's prepared activations, in the preparing thread's storage
};

// Preparations alive at once in one thread: matmul uses the first, same_input one per distinct one.
constexpr int kSlots = 4;

Prepared prepare(const detail::MatmulJob& job, int slot, ThreadPool& pool) {
  const WeightMatrix& w = *job.w;
  const Activations mode = activations();
  if (mode == Activations::kInt8 && detail::takes_int8_dot(w)) {
    thread_local detail::Int8Activations quantised[kSlots];
    detail::prepare_int8_activations(job, quantised[slot], pool);
    const bool vnni = active_isa() == Isa::kAvx512 && detail::cpu_has_avx512_vnni();
    return {vnni ? Prepared::Path::kInt8Vnni : Prepared::Path::kInt8Portable, &quantised[slot]};
  }
  if (mode == Activations::kBf16 && detail::takes_bf16_dot(w)) {
    thread_local detail::Bf16Activations rounded[kSlots];
    if (active_isa() == Isa::kAvx512 && detail::cpu_has_avx512_bf16()) {
      detail::prepare_bf16_activations_avx512(job, rounded[slot]);
      return {Prepared::Path::kBf16Avx512, &rounded[slot]};
    }
    detail::prepare_bf16_activations(job, rounded[slot]);
    return {Prepared::Path::kBf16Portable, &rounded[slot]};
  }
  // MXFP4 and FP8 widen inside the AVX-512 tiles (FP8 where its blocks allow), else a row at a time.
  const bool avx512 = active_isa() == Isa::kAvx512;
  if ((w.dtype == DType::kMxfp4 && !avx512) || (w.dtype == DType::kF8E4M3 && !(avx512 && detail::avx512_takes_fp8(job))))
    return {Prepared::Path::kWidened};
  switch (active_isa()) {
    case Isa::kAvx512: {
      thread_local detail::AlignedFloats storage[kSlots];
      thread_local detail::Avx512Input input[kSlots];
      detail::prepare_avx512(job, storage[slot], input[slot], pool);
      return {Prepared::Path::kAvx512, &input[slot]};
    }
    case Isa::kAvx2: return {Prepared::Path::kAvx2};
    case Isa::kPortable: break;
  }
  return {Prepared::Path::kPortable};
}

void run_rows(const Prepared& p, const detail::MatmulJob& job, int64_t r0, int64_t r1) {
  switch (p.path) {
    case Prepared::Path::kInt8Vnni:
      return detail::rows_int8_dot_avx512(job, *static_cast<const detail::Int8Activations*>(p.input), r0, r1);
    case Prepared::Path::kInt8Portable:
      return detail::rows_int8_dot_portable(job, *static_cast<const detail::Int8Activations*>(p.input), r0, r1);
    case Prepared::Path::kBf16Avx512:
      return detail::rows_bf16_dot_avx512(job, *static_cast<const detail::Bf16Activations*>(p.input), r0, r1);
    case Prepared::Path::kBf16Portable:
      return detail::rows_bf16_dot_portable(job, *static_cast<const detail::Bf16Activations*>(p.input), r0, r1);
    case Prepared::Path::kWidened: return detail::rows_widened(job, r0, r1, &widen_row);
    case Prepared::Path::kAvx512: return detail::rows_avx512(job, *static_cast<const detail::Avx512Input*>(p.input), r0, r1);
    case Prepared::Path::kAvx2: return detail::rows_avx2(job, r0, r1);
    case Prepared::Path::kPortable: return detail::rows_portable(job, r0, r1);
  }
}

// Whether b's activations are prepared exactly as a's for the same x: what every path's
// preparation reads of the matrix (its dtype, columns and groups); fp8's carries the matrix's
// own block scales and MXFP4's is not worth the check.
bool same_preparation(const WeightMatrix& a, const WeightMatrix& b) {
  return a.dtype == b.dtype && a.cols == b.cols && a.group_size == b.group_size && a.dtype != DType::kF8E4M3 &&
         a.dtype != DType::kMxfp4;
}

}  // namespace

void matmul(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, ThreadPool& pool) {
  check(w);
  if (m <= 0) return;
  const detail::MatmulJob job{x, m, &w, y, bias};
  const Prepared p = prepare(job, 0, pool);
  split_rows(job, pool, [&](int64_t r0, int64_t r1) { run_rows(p, job, r0, r1); });
}

void matmul_same_input(const float* x, int64_t m, std::span<const SameInputProduct> products, ThreadPool& pool) {
  if (m <= 0 || products.empty()) return;
  std::vector<detail::MatmulJob> jobs;
  std::vector<Prepared> prepared;
  std::vector<SameInputProduct> alone;
  int slots = 0;
  int64_t rows = 0, work = 0;
  for (const SameInputProduct& product : products) {
    check(*product.w);
    MOE_CHECK(product.w->cols == products[0].w->cols, ErrorCode::kInvalidArgument,
              "products of one input need as many columns each: {} and {}", products[0].w->cols, product.w->cols);
    const detail::MatmulJob job{x, m, product.w, product.y, product.bias};
    size_t same = 0;
    while (same < jobs.size() && !same_preparation(*jobs[same].w, *product.w)) ++same;
    if (same == jobs.size() && slots == kSlots) {  // more kinds than slots: on its own, after the rest (slot 0 is theirs)
      alone.push_back(product);
      continue;
    }
    const Prepared p = same < jobs.size() ? prepared[same] : prepare(job, slots++, pool);
    prepared.push_back(p);
    jobs.push_back(job);
    rows += product.w->rows;
    work += product.w->rows * product.w->cols * m;
  }
  // Every matrix's rows in a row, split once over the threads (a row's sums do not depend on
  // which chunk or thread computes it).
  const auto run_range = [&](int64_t lo, int64_t hi) {
    int64_t offset = 0;
    for (size_t j = 0; j < jobs.size(); offset += jobs[j].w->rows, ++j) {
      const int64_t r0 = std::max<int64_t>(lo - offset, 0), r1 = std::min(hi - offset, jobs[j].w->rows);
      if (r0 < r1) run_rows(prepared[j], jobs[j], r0, r1);
    }
  };
  const int64_t chunks = work < kParallelFrom ? 1 : std::min<int64_t>(pool.size(), (rows + kRowAlign - 1) / kRowAlign);
  if (chunks <= 1) {
    run_range(0, rows);
  } else {
    pool.parallel_for(chunks, [&](int64_t c0, int64_t c1) {
      const auto edge = [&](int64_t c) { return std::min(rows, (rows * c / chunks + kRowAlign - 1) / kRowAlign * kRowAlign); };
      run_range(edge(c0), edge(c1));
    });
  }
  for (const SameInputProduct& product : alone) matmul(x, m, *product.w, product.y, product.bias, pool);
}

void matmul_same_input(const float* x, int64_t m, std::span<const SameInputProduct> products) {
  matmul_same_input(x, m, products, ThreadPool::global());
}

void matmul(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias) {
  matmul(x, m, w, y, bias, ThreadPool::global());
}

void row_to_f32(const WeightMatrix& w, int64_t row, float* out) {
  check(w);
  MOE_CHECK(row >= 0 && row < w.rows, ErrorCode::kInvalidArgument, "row {} is outside a matrix of {} rows", row, w.rows);
  widen_row(w, row, out);
}

}  // namespace moe::cpu
