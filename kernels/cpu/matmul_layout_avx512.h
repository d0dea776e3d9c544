#pragma once
// The AVX-512 matmul's lane layouts (internal to kernels/cpu; plain C++, so that the scalar
// preparation outside the AVX-512 region can name them): which slot of a block's two registers
// holds which column, per format (matmul_avx512.cpp's opening comment says why each).
#include "kernels/cpu/matmul_paths.h"

namespace moe::cpu::detail {

enum class Layout { kNatural, kPaired, kNibble };

inline Layout layout_of(DType dtype) {
  return dtype == DType::kBF16                                ? Layout::kPaired
         : dtype == DType::kI4 || dtype == DType::kMxfp4 ? Layout::kNibble
                                                              : Layout::kNatural;
}

// Where lane (column in its block) c lives in a layout: slots 0..15 are register 0's, 16..31
// register 1's.
constexpr int slot_of(Layout layout, int c) {
  switch (layout) {
    case Layout::kNatural: return c;
    case Layout::kPaired: return (c % 2) * 16 + c / 2;
    case Layout::kNibble: return (c % 8 / 4) * 16 + 4 * (c % 4) + c / 8;
  }
  return c;
}

}  // namespace moe::cpu::detail
