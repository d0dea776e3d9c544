#pragma once
// y = x W^T (+ b) with f32 activations and weights in f32, bf16, f16, int8, int4, MXFP4 (mxfp4.h) or
// FP8 e4m3 with block scales (fp8.h).
//
// Determinism contract: every output element is one dot product summed in 32 lanes
// (element c goes to lane c % 32, accumulated with fused multiply-add in increasing c), then
// the lanes are added in a fixed tree. The order depends only on the number of columns, so a
// row's result is the same bits whether it is computed alone or in a batch, on any thread
// count, and on the AVX-512, AVX2 or portable path.
#include <cstdint>
#include <span>
#include <string_view>

#include "runtime/core/dtype.h"
#include "runtime/core/tensor.h"

namespace moe::cpu {

struct WeightMatrix {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features
  const float* scales = nullptr;  // int8/int4: [rows, cols / group_size]
  int group_size = 0;
  int64_t row_stride = 0;  // elements from one row to the next (f32/bf16/f16); 0: cols
  const uint8_t* exponents = nullptr;  // mxfp4: e8m0 scales [rows, cols / 32]; data holds the e2m1 blocks
  // fp8 (e4m3fn): element (r, c) is data[r][c] x block_scales[(r + block_row0) / block_rows][(c + block_col0) /
  // block_cols], the block grid's rows block_stride scales apart; the offsets place a slice of a
  // bigger matrix in its grid (DeepSeek's weight_scale_inv, kernels/cpu/fp8.h).
  const float* block_scales = nullptr;
  int block_rows = 0, block_cols = 0;
  int64_t block_stride = 0, block_row0 = 0, block_col0 = 0;
  int64_t stride() const { return row_stride > 0 ? row_stride : cols; }
};

// A 2-D contiguous f32/bf16/f16 tensor as a weight matrix.
WeightMatrix weight_matrix(const Tensor& w);

class ThreadPool;

// x: [m, w.cols], y: [m, w.rows], bias: [w.rows] or null.
void matmul(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias = nullptr);
void matmul(const float* x, int64_t m, const WeightMatrix& w, float* y, const float* bias, ThreadPool& pool);

// y_i = x W_i^T (+ b_i) for matrices that read the same x (a gated MLP's gate and up, attention's
// q, k and v): x prepared once for the matrices that take the same preparation, and all their
// rows split over the threads in one hand-off instead of one each. Each y_i is matmul's, bit for bit.
struct SameInputProduct {
  const WeightMatrix* w = nullptr;
  float* y = nullptr;  // [m, w->rows]
  const float* bias = nullptr;
};
void matmul_same_input(const float* x, int64_t m, std::span<const SameInputProduct> products);
void matmul_same_input(const float* x, int64_t m, std::span<const SameInputProduct> products, ThreadPool& pool);

// Which instruction set the kernels use: the best the CPU has (or less, by MOE_ISA=portable|avx2
// in the environment); tests switch between them to compare bits.
enum class Isa { kPortable, kAvx2, kAvx512 };  // in increasing order
Isa active_isa();
void set_isa(Isa isa);  // asking for more than the CPU has gives the best it has
std::string_view isa_name(Isa isa);

// How weights meet the activations. kExact (the default, and the tests' oracle) widens
// the weights to f32 under the contract above. kInt8 is a lossy opt-in mode, llama.cpp's Q8 dot
// products: where the scale groups are whole 32-column blocks, each token's activations are
// quantised to int8 per 32-column block and multiplied in exact integer dot products
// (matmul_int8_dot.h has the rule); it is batch-invariant, and the same bits on every path.
// Other matrices stay exact. The vector path needs AVX512-VNNI; elsewhere the portable one runs.
// kBf16, likewise lossy and opt-in, multiplies bf16 weights with each token's activations
// rounded to bf16, two products a lane and instruction (AVX512-BF16's vdpbf16ps; the rule in
// matmul_bf16_dot.h); other matrices stay exact.
enum class Activations { kExact, kInt8, kBf16 };
Activations activations();
void set_activations(Activations mode);
bool cpu_has_int8_dot();  // AVX512-VNNI: the int8-activation mode's fast path
bool cpu_has_bf16_dot();  // AVX512-BF16: the bf16-activation mode's
std::string_view activations_name(Activations mode);  // "exact", "int8", "bf16": --activations' values

// This thread's matmuls in `mode` while it lives, whatever the process's (a lossy run's exact
// reference, to print its error).
class ScopedActivations {
 public:
  explicit ScopedActivations(Activations mode);
  ~ScopedActivations();
  ScopedActivations(const ScopedActivations&) = delete;
  ScopedActivations& operator=(const ScopedActivations&) = delete;

 private:
  int before_;
};

// Widens row `row` of the matrix to f32 (embedding lookups).
void row_to_f32(const WeightMatrix& w, int64_t row, float* out);

}  // namespace moe::cpu
