#pragma once
// The bf16-activation mode (Activations::kBf16, matmul.h; internal to kernels/cpu): bf16 weights
// meet each token's activations rounded to bf16, two products per f32 lane and instruction, as
// llama.cpp's BF16 path does with AVX512-BF16's vdpbf16ps (twice the f32 FMA rate on Zen 4).
//
// The rule, which the portable path defines and the vector path matches: each activation x
// becomes bf16 by round-to-nearest-even (a subnormal x becomes a zero of its sign, NaN stays NaN);
// a subnormal bf16 (weight or activation) is read as a zero of its sign. The columns go to 16
// lanes a 32-column block at a time, lane l taking columns 32b + 2l (even) and 32b + 2l + 1 (odd):
// lane[l] = fma(x_even, w_even, fma(x_odd, w_odd, lane[l])) with the odd product first, each
// result flushed to a zero of its sign when subnormal, block after block; columns past the
// matrix's count as zeros (x = w = 0). The output is the 16 lanes added by a fixed tree,
// (l[i] + l[8 + i]) then matmul_paths.h's eight-lane tree, plus the bias. A row's bits depend on
// its token alone: batch-invariant, and the same on the portable and AVX512-BF16 paths.
#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul_paths.h"

namespace moe::cpu::detail {

bool takes_bf16_dot(const WeightMatrix& w);  // bf16 weights

struct Bf16Activations {
  int64_t m = 0, blocks = 0;  // 32-column blocks, the last one padded with zeros
  AlignedFloats storage;
  const uint16_t* x = nullptr;  // [m, blocks * 32] bf16, in storage (64-byte aligned rows)
  const uint16_t* row(int64_t token) const { return x + token * blocks * 32; }
};

void prepare_bf16_activations(const MatmulJob& job, Bf16Activations& a);
void prepare_bf16_activations_avx512(const MatmulJob& job, Bf16Activations& a);  // the same bits
void rows_bf16_dot_portable(const MatmulJob& job, const Bf16Activations& a, int64_t r0, int64_t r1);
void rows_bf16_dot_avx512(const MatmulJob& job, const Bf16Activations& a, int64_t r0, int64_t r1);
bool cpu_has_avx512_bf16();

}  // namespace moe::cpu::detail
