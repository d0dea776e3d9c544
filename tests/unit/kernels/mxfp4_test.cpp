// MXFP4 decoding (e2m1 values, e8m0 scales, the nibble order of gpt-oss's blocks), its matmul
// path against the dequantised f32 matrix (the same bits: both follow matmul.h's lanes), and the
// attention kernel's sinks (gpt-oss) against a double-precision softmax.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/mxfp4.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_encoding.h"
#include "runtime/core/error.h"

namespace moe::cpu {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Mxfp4, E2m1CodesAreTheSpecsValues) {
  const float expected[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                              -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  for (uint8_t code = 0; code < 16; ++code) {
    EXPECT_EQ(e2m1_value(code), expected[code]) << int(code);
    EXPECT_EQ(std::signbit(e2m1_value(code)), code >= 8) << int(code);
    if (code != 8) EXPECT_EQ(e2m1_code(expected[code]), code) << int(code);  // -0 encodes as +0
    EXPECT_EQ(e2m1_value(uint8_t(code | 0x30)), expected[code]);             // only the low nibble counts
  }
  // Nearest value, ties to the even code, saturation at 6.
  EXPECT_EQ(e2m1_code(0.25f), 0);
  EXPECT_EQ(e2m1_code(0.2500001f), 1);
  EXPECT_EQ(e2m1_code(0.75f), 2);   // 0.5 (odd code 1) vs 1.0 (even code 2)
  EXPECT_EQ(e2m1_code(1.25f), 2);
  EXPECT_EQ(e2m1_code(2.5f), 4);
  EXPECT_EQ(e2m1_code(3.5f), 6);
  EXPECT_EQ(e2m1_code(5.0f), 6);
  EXPECT_EQ(e2m1_code(5.1f), 7);
  EXPECT_EQ(e2m1_code(100.0f), 7);
  EXPECT_EQ(e2m1_code(-100.0f), 15);
  EXPECT_EQ(e2m1_code(-0.1f), 0);
}

TEST(Mxfp4, E8m0ScalesArePowersOfTwo) {
  for (int e = 0; e < 255; ++e) EXPECT_EQ(e8m0_scale(uint8_t(e)), std::ldexp(1.0f, e - 127)) << e;
  EXPECT_EQ(e8m0_scale(127), 1.0f);
  EXPECT_EQ(e8m0_scale(0), std::numeric_limits<float>::denorm_min() * float(1 << 22));  // 2^-127, subnormal
  EXPECT_TRUE(std::isnan(e8m0_scale(255)));
}

// The layout gpt-oss's *_blocks use: byte j of a block holds element 2j (low nibble) and 2j + 1
// (high nibble); one scale per 32 elements.
TEST(Mxfp4, DequantizesTheReleasedLayout) {
  uint8_t blocks[32] = {};
  blocks[0] = 0x72;   // elements 0, 1: code 2 (1.0), code 7 (6.0)
  blocks[15] = 0x9F;  // elements 30, 31: code 15 (-6.0), code 9 (-0.5)
  blocks[16] = 0x31;  // elements 32, 33: 0.5, 1.5
  const uint8_t scales[2] = {128, 125};  // 2, 1/4
  float out[64];
  mxfp4_dequantize_row(blocks, scales, 64, out);
  EXPECT_EQ(out[0], 2.0f);
  EXPECT_EQ(out[1], 12.0f);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_EQ(out[30], -12.0f);
  EXPECT_EQ(out[31], -1.0f);
  EXPECT_EQ(out[32], 0.125f);
  EXPECT_EQ(out[33], 0.375f);
  EXPECT_EQ(out[63], 0.0f);
}

TEST(Mxfp4, QuantizeKeepsMxfp4ValuesAndBoundsTheError) {
  const int64_t cols = 128;
  const std::vector<float> v = random_floats(cols, 7, 0.3f);
  std::vector<uint8_t> blocks(cols / 2), scales(cols / 32);
  mxfp4_quantize_row(v.data(), cols, blocks.data(), scales.data());
  std::vector<float> back(cols), again(cols);
  mxfp4_dequantize_row(blocks.data(), scales.data(), cols, back.data());
  for (int64_t b = 0; b < cols / 32; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[size_t(b * 32 + i)]));
    const float scale = e8m0_scale(scales[size_t(b)]);
    EXPECT_LE(amax / scale, 8.0f);
    EXPECT_GE(amax / scale, 4.0f);
    // Below 6 x scale the error is at most half a step (a step is at most 2 x scale); above, saturated.
    for (int i = 0; i < 32; ++i) {
      const float x = v[size_t(b * 32 + i)], q = back[size_t(b * 32 + i)];
      EXPECT_LE(std::fabs(x - q), std::fabs(x) <= 6 * scale ? scale : std::fabs(x) - 6 * scale) << b << " " << i;
    }
  }
  // MXFP4 values quantise to themselves.
  mxfp4_quantize_row(back.data(), cols, blocks.data(), scales.data());
  mxfp4_dequantize_row(blocks.data(), scales.data(), cols, again.data());
  EXPECT_TRUE(same_bits(back, again));
}

// The MXFP4 path gives the bits of the f32 path over the dequantised matrix (both accumulate in
// matmul.h's 32 lanes), for any batch, thread count or instruction set.
TEST(Mxfp4, MatmulEqualsTheDequantisedF32Matmul) {
  const int64_t rows = 45, cols = 96, m = 5;
  const std::vector<float> w = random_floats(size_t(rows * cols), 11, 0.2f), x = random_floats(size_t(m * cols), 12);
  const std::vector<float> bias = random_floats(size_t(rows), 13);
  const EncodedMatrix q = encode_matrix(w.data(), rows, cols, DType::kMxfp4);
  std::vector<float> dequantised(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) row_to_f32(q.matrix, r, dequantised.data() + r * cols);
  const EncodedMatrix f = encode_matrix(dequantised.data(), rows, cols, DType::kF32);
  std::vector<float> want(size_t(m * rows)), got(size_t(m * rows));
  matmul(x.data(), m, f.matrix, want.data(), bias.data());
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    set_isa(isa);
    matmul(x.data(), m, q.matrix, got.data(), bias.data());
    EXPECT_TRUE(same_bits(got, want)) << isa_name(active_isa());
    ThreadPool one(1);
    std::vector<float> single(static_cast<size_t>(rows));
    for (int64_t t = 0; t < m; ++t) {
      matmul(x.data() + t * cols, 1, q.matrix, single.data(), bias.data(), one);
      EXPECT_EQ(std::memcmp(single.data(), want.data() + t * rows, sizeof(float) * size_t(rows)), 0) << "token " << t;
    }
  }
  set_isa(Isa::kAvx512);  // the best the CPU has
  WeightMatrix bad = q.matrix;
  bad.exponents = nullptr;
  EXPECT_THROW(matmul(x.data(), m, bad, got.data()), Error);
}

// Every code in every slot of a block and scales from 2^-127 (a subnormal) to 2^127, through
// the decode tiles and the batch panel (16 tokens): the dequantised matrix's bits.
TEST(Mxfp4, EveryCodeAndScaleGivesTheDequantisedBits) {
  const int64_t rows = 11, cols = 128;
  std::vector<uint8_t> blocks(size_t(rows * cols / 2)), exponents(size_t(rows * cols / kMxfp4Block));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = uint8_t((i * 29 + i / 7) % 256);
  const uint8_t chosen[] = {0, 1, 100, 127, 130, 200, 254};
  for (size_t i = 0; i < exponents.size(); ++i) exponents[i] = chosen[i % 7];
  WeightMatrix q;
  q.data = blocks.data();
  q.dtype = DType::kMxfp4;
  q.rows = rows;
  q.cols = cols;
  q.exponents = exponents.data();
  std::vector<float> dequantised(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) row_to_f32(q, r, dequantised.data() + r * cols);
  const EncodedMatrix f = encode_matrix(dequantised.data(), rows, cols, DType::kF32);
  for (int64_t m : {1, 5, 16}) {
    const std::vector<float> x = random_floats(size_t(m * cols), 21 + uint32_t(m), 1e-20f);
    std::vector<float> want(size_t(m * rows)), got(size_t(m * rows));
    for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
      set_isa(isa);
      matmul(x.data(), m, f.matrix, want.data());
      matmul(x.data(), m, q, got.data());
      EXPECT_TRUE(same_bits(got, want)) << "m " << m << " " << isa_name(active_isa());
    }
  }
  set_isa(Isa::kAvx512);
}

// Sinks: one more logit per head in the softmax's denominator and max, weighing no value.
TEST(Attention, SinksJoinTheSoftmaxAndWeighNoValue) {
  const int64_t n = 6, heads = 4, kv_heads = 2, dim = 8, group = heads / kv_heads;
  const float scale = 0.4f;
  const std::vector<float> q = random_floats(size_t(n * heads * dim), 21), k = random_floats(size_t(n * kv_heads * dim), 22),
                           v = random_floats(size_t(n * kv_heads * dim), 23);
  const std::vector<float> sinks = {1.5f, -0.5f, 30.0f, 0.0f};  // 30: the max is the sink's
  for (int64_t window : {0, 3}) {
    std::vector<float> all(q.size()), step(q.size());
    attention(q.data(), k.data(), v.data(), n, 0, heads, kv_heads, dim, scale, all.data(), window, nullptr, sinks.data());
    for (int64_t t = 0; t < n; ++t) {
      attention(q.data() + t * heads * dim, k.data(), v.data(), 1, t, heads, kv_heads, dim, scale, step.data() + t * heads * dim,
                window, nullptr, sinks.data());
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t kvh = h / group, first = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
        std::vector<double> s;
        double max = sinks[size_t(h)];
        for (int64_t j = first; j <= t; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < dim; ++d)
            dot += double(q[size_t((t * heads + h) * dim + d)]) * k[size_t((j * kv_heads + kvh) * dim + d)];
          s.push_back(dot * scale);
          max = std::max(max, s.back());
        }
        double sum = std::exp(double(sinks[size_t(h)]) - max);
        for (double& x : s) sum += (x = std::exp(x - max));
        for (int64_t d = 0; d < dim; ++d) {
          double o = 0;
          for (int64_t j = first; j <= t; ++j) o += s[size_t(j - first)] / sum * v[size_t((j * kv_heads + kvh) * dim + d)];
          EXPECT_NEAR(all[size_t((t * heads + h) * dim + d)], o, 1e-5) << "window " << window << " token " << t << " head " << h;
        }
      }
    }
    EXPECT_TRUE(same_bits(all, step)) << "prefill = step-by-step decode, window " << window;
  }
  // Sinks of -inf are no sinks at all, bit for bit.
  const std::vector<float> none(size_t(heads), -std::numeric_limits<float>::infinity());
  std::vector<float> plain(q.size()), with(q.size());
  attention(q.data(), k.data(), v.data(), n, 0, heads, kv_heads, dim, scale, plain.data());
  attention(q.data(), k.data(), v.data(), n, 0, heads, kv_heads, dim, scale, with.data(), 0, nullptr, none.data());
  EXPECT_TRUE(same_bits(plain, with));
}

}  // namespace
}  // namespace moe::cpu
