#pragma once
// The int8-activation mode (Activations::kInt8, matmul.h; internal to kernels/cpu): llama.cpp's
// Q8 dot products for int8/int4 weights whose scale groups are whole 32-column blocks.
//
// Each token's activations are quantised per 32-column block: amax = max |x|, scale
// sx = amax / 127, q = round-half-even(x * (127 / amax)) in [-127, 127] (a block with a NaN or an
// infinity gets sx = NaN and q = 0, so its outputs are NaN as the exact mode's would be). The
// columns then go to 16 lanes a span at a time, C columns a lane (int4: C = 8, spans of 128
// columns; int8: C = 4, spans of 64): lane l of span s covers columns s * 16C + l * C .. + C - 1,
// all in block b = (s * 16C + l * C) / 32. Its integer dot product d = sum of w * q is exact
// (the vector path meets q with unsigned weights, w + 8 or w + 128, and a per-lane correction,
// -8 or -128 times the lane's sum of q); then lane[l] = fma(float(d), sw(b) * sx(b), lane[l]),
// span after span, where sw
// is the weight's group scale; lanes of blocks past the columns add fma(0, 0, .). The output is
// the 16 lanes added by a fixed tree, (l[i] + l[8 + i]) then matmul_paths.h's eight-lane tree,
// plus the bias. So a row's bits depend on its token alone: batch-invariant, and the same on
// the portable and AVX512-VNNI paths.
#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul_paths.h"

namespace moe::cpu {
class ThreadPool;
}  // namespace moe::cpu

namespace moe::cpu::detail {

// int8 or int4 weights grouped in multiples of 32 columns.
bool takes_int8_dot(const WeightMatrix& w);

struct Int8Activations {
  int64_t m = 0, blocks = 0, spans = 0;
  int lane_cols = 0;              // C: 8 (int4) or 4 (int8)
  std::vector<int8_t> q;          // [m, spans * 16C]: zero past the columns
  std::vector<float> scale;       // [m, blocks]
  // The vector paths' copy, kRecordBytes a span and token, 64-byte aligned: int4: bytes 0-63 the
  // span's even columns' q in lane order (lane l's 4 bytes at 4l), 64-127 its odd ones', 128-191
  // each lane's -8 * sum of its q (int32: an unsigned nibble w + 8 meets q), 192-255 each lane's
  // sx (0 past the columns); int8: bytes 0-63 q in column order, 128-191 each lane's -128 * sum
  // of its q (an unsigned w + 128 meets q), 192-255 sx.
  static constexpr int64_t kRecordBytes = 256;
  AlignedFloats storage;
  std::byte* records = nullptr;  // in storage
  const std::byte* record(int64_t token, int64_t span) const { return records + (token * spans + span) * kRecordBytes; }
};

// Tokens over `pool` for a batch (each token's blocks and records are its own: the same bytes).
void prepare_int8_activations(const MatmulJob& job, Int8Activations& a, ThreadPool& pool);
void rows_int8_dot_portable(const MatmulJob& job, const Int8Activations& a, int64_t r0, int64_t r1);
void rows_int8_dot_avx512(const MatmulJob& job, const Int8Activations& a, int64_t r0, int64_t r1);
// One 32-column block of a token quantised as prepare_int8_activations does it, sixteen lanes at
// a time (the same bits: |max| and the rounding adds are exact ops in either form): its scale, and
// its q unless the block is all zeros or holds a NaN or infinity (then q is left as it is).
void quantise_block_avx512(const float* x, float* scale, int8_t* q);
bool cpu_has_avx512_vnni();

}  // namespace moe::cpu::detail
