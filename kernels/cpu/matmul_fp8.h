#pragma once
// The matmul's FP8 path (internal to kernels/cpu; format in fp8.h): rows [r0, r1) of
// y = x W^T (+ b), each weight row dequantised to f32 once (exactly: value x block scale, one
// multiply) and dotted with every token in matmul.h's 32 lanes, so the bits depend only on the
// number of columns and equal those of the same f32 values through any other path.
#include "kernels/cpu/matmul_paths.h"

namespace moe::cpu::detail {

// AVX-512 widens in registers (fp8_avx512.cpp); AVX2 and portable take the table path, whose
// dot product is cloned for x86-64-v3 (an AVX2 register version measured slower than it). Every
// one gives the same bits.
void rows_fp8(const MatmulJob& job, int64_t r0, int64_t r1);
void rows_fp8_portable(const MatmulJob& job, int64_t r0, int64_t r1);
void rows_fp8_avx512(const MatmulJob& job, int64_t r0, int64_t r1);

}  // namespace moe::cpu::detail
