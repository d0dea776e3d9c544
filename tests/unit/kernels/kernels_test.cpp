// CPU kernels against double-precision references, and their determinism contract: the same
// bits whatever the batch, the thread count or the instruction set.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/combine.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/router.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/core/error.h"

namespace moe::cpu {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A weight matrix in every format, with its exact f32 values for the reference.
struct Weights {
  std::vector<uint16_t> half;
  std::vector<float> f32, scales, exact;
  std::vector<uint8_t> quant;
  WeightMatrix matrix;
};

Weights make_weights(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
  Weights w;
  w.f32 = random_floats(size_t(rows * cols), seed);
  w.exact = w.f32;
  w.matrix.dtype = dtype;
  w.matrix.rows = rows;
  w.matrix.cols = cols;
  if (dtype == DType::kBF16 || dtype == DType::kF16) {
    for (size_t i = 0; i < w.f32.size(); ++i) {
      w.half.push_back(dtype == DType::kBF16 ? f32_to_bf16(w.f32[i]) : f32_to_f16(w.f32[i]));
      w.exact[i] = dtype == DType::kBF16 ? bf16_to_f32(w.half.back()) : f16_to_f32(w.half.back());
    }
    w.matrix.data = w.half.data();
  } else if (dtype == DType::kI8 || dtype == DType::kI4) {
    const QuantFormat f{dtype, 8};  // small groups: 200 columns leave a tail past the 32-lane blocks
    w.quant.resize(quantized_data_bytes(f, rows, cols));
    w.scales.resize(quantized_scale_count(f, rows, cols));
    quantize_rows(w.f32.data(), rows, cols, f, w.quant.data(), w.scales.data());
    dequantize_rows(w.quant.data(), w.scales.data(), rows, cols, f, w.exact.data());
    w.matrix.data = w.quant.data();
    w.matrix.scales = w.scales.data();
    w.matrix.group_size = 8;
  } else {
    w.matrix.data = w.f32.data();
  }
  return w;
}

class EveryDtype : public ::testing::TestWithParam<DType> {};

TEST_P(EveryDtype, MatmulMatchesADoubleReference) {
  const int64_t rows = 37, cols = 200, m = 3;  // 200 = 6 full 32-lane blocks + a tail of 8
  const Weights w = make_weights(GetParam(), rows, cols, 1);
  const auto x = random_floats(size_t(m * cols), 2), bias = random_floats(size_t(rows), 3);
  std::vector<float> y(size_t(m * rows), NAN);
  matmul(x.data(), m, w.matrix, y.data(), bias.data());
  for (int64_t t = 0; t < m; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double ref = bias[size_t(r)];
      for (int64_t c = 0; c < cols; ++c) ref += double(x[size_t(t * cols + c)]) * w.exact[size_t(r * cols + c)];
      EXPECT_NEAR(y[size_t(t * rows + r)], ref, 1e-5 * (1 + std::fabs(ref))) << t << "," << r;
    }
}

TEST_P(EveryDtype, MatmulBitsDoNotDependOnBatchThreadsOrIsa) {
  const int64_t rows = 64, cols = 96, m = 5;
  const Weights w = make_weights(GetParam(), rows, cols, 4);
  const auto x = random_floats(size_t(m * cols), 5);
  std::vector<float> batch(size_t(m * rows));
  ThreadPool one(1), two(2);
  matmul(x.data(), m, w.matrix, batch.data(), nullptr, two);
  for (int64_t t = 0; t < m; ++t) {
    std::vector<float> alone(static_cast<size_t>(rows));
    matmul(x.data() + t * cols, 1, w.matrix, alone.data(), nullptr, one);
    EXPECT_TRUE(same_bits(alone, std::vector<float>(batch.begin() + t * rows, batch.begin() + (t + 1) * rows))) << t;
  }
  const Isa before = active_isa();
  set_isa(Isa::kPortable);
  std::vector<float> portable(size_t(m * rows));
  matmul(x.data(), m, w.matrix, portable.data(), nullptr, two);
  set_isa(before);
  EXPECT_TRUE(same_bits(portable, batch));
}

INSTANTIATE_TEST_SUITE_P(Kernels, EveryDtype, ::testing::Values(DType::kF32, DType::kBF16, DType::kF16, DType::kI8, DType::kI4));

TEST(Quantize, ErrorIsBoundedByHalfAStep) {
  const int64_t rows = 4, cols = 128;
  const auto x = random_floats(size_t(rows * cols), 6, 3.0f);
  for (DType dtype : {DType::kI8, DType::kI4}) {
    const QuantFormat f{dtype, 64};
    std::vector<uint8_t> q(quantized_data_bytes(f, rows, cols));
    std::vector<float> scales(quantized_scale_count(f, rows, cols)), back(x.size());
    quantize_rows(x.data(), rows, cols, f, q.data(), scales.data());
    dequantize_rows(q.data(), scales.data(), rows, cols, f, back.data());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_LE(std::fabs(back[i] - x[i]), scales[i / 64] * 0.5f + 1e-7f);
  }
  EXPECT_THROW(quantize_rows(x.data(), rows, cols, QuantFormat{DType::kI8, 48}, nullptr, nullptr), Error);
  EXPECT_THROW(quantize_rows(x.data(), rows, cols, QuantFormat{DType::kBF16, 0}, nullptr, nullptr), Error);
}

TEST(Quantize, AllZeroGroupsStayZero) {
  const std::vector<float> zeros(64, 0.0f);
  const QuantFormat f{DType::kI4, 32};
  std::vector<uint8_t> q(32);
  std::vector<float> scales(2), back(64, 1.0f);
  quantize_rows(zeros.data(), 1, 64, f, q.data(), scales.data());
  dequantize_rows(q.data(), scales.data(), 1, 64, f, back.data());
  EXPECT_EQ(back, zeros);
}

TEST(Norm, RmsNormMatchesItsFormula) {
  const auto x = random_floats(64, 7), w = random_floats(32, 8);
  std::vector<float> out(64);
  rms_norm(x.data(), out.data(), 2, 32, w.data(), 1e-6f);
  for (int r = 0; r < 2; ++r) {
    double ss = 0;
    for (int j = 0; j < 32; ++j) ss += double(x[size_t(r * 32 + j)]) * x[size_t(r * 32 + j)];
    const double inv = 1 / std::sqrt(ss / 32 + 1e-6);
    for (int j = 0; j < 32; ++j) EXPECT_NEAR(out[size_t(r * 32 + j)], x[size_t(r * 32 + j)] * inv * w[size_t(j)], 1e-5);
  }
}

TEST(Norm, LayerNormHasZeroMeanUnitVariance) {
  const auto x = random_floats(48, 9, 5.0f);
  std::vector<float> out(48);
  layer_norm(x.data(), out.data(), 1, 48, nullptr, nullptr, 1e-6f);
  double mean = 0, var = 0;
  for (float v : out) mean += v;
  mean /= 48;
  for (float v : out) var += (v - mean) * (v - mean);
  EXPECT_NEAR(mean, 0, 1e-5);
  EXPECT_NEAR(var / 48, 1, 1e-4);
}

TEST(Rope, DefaultFrequenciesAndRotation) {
  RopeParams p;
  p.rotary_dim = 8;
  p.theta = 10000;
  const RopeTable t = make_rope_table(p, 16);
  ASSERT_EQ(t.inv_freq.size(), 4u);
  EXPECT_FLOAT_EQ(t.inv_freq[0], 1.0f);
  EXPECT_NEAR(t.inv_freq[1], std::pow(10000.0, -0.25), 1e-7);
  // Rotation keeps the norm of each (i, i + half) pair.
  std::vector<float> v = random_floats(8, 10);
  const std::vector<float> before = v;
  const int64_t position = 5;
  apply_rope(v.data(), 1, 1, 8, 8, &position, t);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(std::hypot(v[size_t(i)], v[size_t(i + 4)]), std::hypot(before[size_t(i)], before[size_t(i + 4)]), 1e-5);
  p.type = "no-such-scaling";
  EXPECT_THROW(make_rope_table(p, 16), Error);
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Expected bits come from transformers 5.23 / torch 2.15 on CPU:
//   cfg = LlamaConfig(hidden_size=1024, num_attention_heads=8, max_position_embeddings=16384,
//                     rope_parameters={...as below...})
//   inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](cfg, "cpu")
// Indices cover the unscaled band, the ramp / smoothing band and the fully scaled band.
TEST(Rope, YarnMatchesTransformersBits) {
  RopeParams p;  // rope_theta 10000, factor 4, original 4096, beta_fast 32, beta_slow 1
  p.rotary_dim = 128;
  p.type = "yarn";
  p.factor = 4;
  p.original_max_position_embeddings = 4096;
  p.max_position_embeddings = 16384;
  const RopeTable t = make_rope_table(p, 0);
  ASSERT_EQ(t.inv_freq.size(), 64u);
  const std::pair<int, uint32_t> expected[] = {{0, 0x3f800000}, {16, 0x3dcccccd}, {20, 0x3d6655c2}, {30, 0x3c1b75ba},
                                               {33, 0x3bb15978}, {34, 0x3b927d78}, {40, 0x3aaf5c08}, {63, 0x37f22ce2}};
  for (const auto& [i, bits] : expected) EXPECT_EQ(t.inv_freq[size_t(i)], from_bits(bits)) << "index " << i;
  EXPECT_FLOAT_EQ(t.attention_scaling, 1.138629436111989f);  // 0.1 * ln(4) + 1
}

TEST(Rope, Llama3MatchesTransformersBits) {
  RopeParams p;  // rope_theta 500000, factor 8, low 1, high 4, original 8192
  p.rotary_dim = 128;
  p.type = "llama3";
  p.theta = 500000;
  p.factor = 8;
  p.original_max_position_embeddings = 8192;
  const RopeTable t = make_rope_table(p, 0);
  const std::pair<int, uint32_t> expected[] = {{0, 0x3f800000}, {16, 0x3d1a08c8}, {20, 0x3c87a9c3}, {30, 0x3ab3d11d},
                                               {33, 0x39a3f108}, {34, 0x393b2dd2}, {40, 0x380fc8f8}, {63, 0x34a4c2ff}};
  for (const auto& [i, bits] : expected) EXPECT_EQ(t.inv_freq[size_t(i)], from_bits(bits)) << "index " << i;
  EXPECT_EQ(t.attention_scaling, 1.0f);
}

TEST(Activation, MatchesTheirFormulas) {
  const auto g = random_floats(64, 20, 6.0f), u = random_floats(64, 21, 2.0f);
  std::vector<float> out(64), ge = g, gt = g;
  silu_mul(g.data(), u.data(), out.data(), 64);
  gelu(ge.data(), 64);
  gelu_tanh(gt.data(), 64);
  for (size_t i = 0; i < 64; ++i) {
    const double x = g[i];
    EXPECT_NEAR(out[i], x / (1 + std::exp(-x)) * u[i], 1e-5 * (1 + std::fabs(out[i])));
    EXPECT_NEAR(ge[i], 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))), 1e-5 * (1 + std::fabs(x)));
    const double inner = std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
    EXPECT_NEAR(gt[i], 0.5 * x * (1 + std::tanh(inner)), 1e-5 * (1 + std::fabs(x)));
  }
  EXPECT_FLOAT_EQ(sigmoid(0.0f), 0.5f);
}

TEST(Combine, AxpyRoundsTheProductBeforeTheAdd) {
  const auto x = random_floats(33, 22);
  auto y = random_floats(33, 23);
  const auto y0 = y;
  axpy(y.data(), x.data(), 0.3f, 33);
  for (size_t i = 0; i < 33; ++i) {
    const float product = 0.3f * x[i];
    EXPECT_EQ(y[i], y0[i] + product);
  }
  add(y.data(), x.data(), 33);
  EXPECT_EQ(y[5], (y0[5] + 0.3f * x[5]) + x[5]);
}

TEST(Router, SoftmaxSumsToOneAndRenormalizes) {
  std::vector<float> rows = {1000.0f, 1001.0f, 999.0f, 0.0f, 0.0f, 0.0f};  // large logits must not overflow
  softmax_rows(rows.data(), 2, 3);
  EXPECT_NEAR(rows[0] + rows[1] + rows[2], 1.0, 1e-6);
  EXPECT_NEAR(rows[1], 1 / (1 + std::exp(-1.0) + std::exp(-2.0)), 1e-6);
  EXPECT_FLOAT_EQ(rows[3], 1.0f / 3);
  float w[] = {0.2f, 0.6f};
  renormalize(w, 2);
  EXPECT_FLOAT_EQ(w[0], 0.25f);
  const float tied[] = {0.5f, 0.5f, 0.1f};
  int32_t ids[2];
  float values[2];
  top_k(tied, 3, 2, ids, values);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 1);
}

TEST(Attention, PrefillEqualsDecodeAndMatchesSoftmax) {
  const int64_t n = 6, heads = 4, kv_heads = 2, dim = 8;
  const auto q = random_floats(size_t(n * heads * dim), 11), k = random_floats(size_t(n * kv_heads * dim), 12),
             v = random_floats(size_t(n * kv_heads * dim), 13);
  std::vector<float> all(q.size()), step(q.size());
  attention(q.data(), k.data(), v.data(), n, 0, heads, kv_heads, dim, 0.35f, all.data());
  for (int64_t t = 0; t < n; ++t)
    attention(q.data() + t * heads * dim, k.data(), v.data(), 1, t, heads, kv_heads, dim, 0.35f, step.data() + t * heads * dim);
  EXPECT_TRUE(same_bits(all, step));
  // Token 0 sees only key 0: its output is value 0 of its kv head.
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t d = 0; d < dim; ++d) EXPECT_FLOAT_EQ(all[size_t(h * dim + d)], v[size_t((h / 2) * dim + d)]);
  // A window of 1 makes every token attend to itself only.
  attention(q.data(), k.data(), v.data(), n, 0, heads, kv_heads, dim, 0.35f, all.data(), /*sliding_window=*/1);
  EXPECT_FLOAT_EQ(all[size_t((5 * heads + 3) * dim + 2)], v[size_t((5 * kv_heads + 1) * dim + 2)]);
}

TEST(Attention, MaskedHeadsAreZeroAndTheOthersUnchanged) {
  const int64_t n = 5, heads = 4, kv_heads = 2, dim = 8;
  const auto q = random_floats(size_t(n * heads * dim), 21), k = random_floats(size_t(n * kv_heads * dim), 22),
             v = random_floats(size_t(n * kv_heads * dim), 23);
  std::vector<float> all(q.size()), masked(q.size(), 7.0f);
  std::vector<uint8_t> mask(size_t(n * heads));
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = uint8_t(i % 3 != 1);
  attention(q.data(), k.data(), v.data(), n, 0, heads, kv_heads, dim, 0.35f, all.data());
  attention(q.data(), k.data(), v.data(), n, 0, heads, kv_heads, dim, 0.35f, masked.data(), 0, mask.data());
  for (size_t job = 0; job < mask.size(); ++job)
    for (int64_t d = 0; d < dim; ++d) {
      const size_t i = job * size_t(dim) + size_t(d);
      EXPECT_EQ(masked[i], mask[job] ? all[i] : 0.0f) << job;
    }
}

// The heads of a kv group share their value rows (read once for up to four heads at a time):
// each head's bits are those it gets alone, here against a kv head of its own holding the same
// keys and values. Six heads (four, then two) and a head size past the 16-column blocks.
TEST(Attention, HeadsOfAGroupGetTheBitsOfAKvHeadEach) {
  const int64_t n = 9, heads = 6, dim = 72;
  const auto q = random_floats(size_t(n * heads * dim), 31), k = random_floats(size_t(n * dim), 32),
             v = random_floats(size_t(n * dim), 33);
  std::vector<float> k_each, v_each;  // [n, heads * dim]: the one kv head copied for every head
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      k_each.insert(k_each.end(), k.begin() + t * dim, k.begin() + (t + 1) * dim);
      v_each.insert(v_each.end(), v.begin() + t * dim, v.begin() + (t + 1) * dim);
    }
  std::vector<float> grouped(q.size(), NAN), alone(q.size(), NAN);
  attention(q.data(), k.data(), v.data(), n, 0, heads, 1, dim, 0.3f, grouped.data());
  attention(q.data(), k_each.data(), v_each.data(), n, 0, heads, heads, dim, 0.3f, alone.data());
  EXPECT_TRUE(same_bits(grouped, alone));
}

TEST(Router, TopKAndThreshold) {
  const float p[] = {0.1f, 0.4f, 0.05f, 0.45f};
  int32_t ids[2];
  float values[2];
  top_k(p, 4, 2, ids, values);
  EXPECT_EQ(ids[0], 3);
  EXPECT_EQ(ids[1], 1);
  std::vector<int32_t> chosen;
  std::vector<float> weights;
  threshold_select(p, 4, 1.0f, chosen, weights);  // p * 4 > 1
  EXPECT_EQ(chosen, (std::vector<int32_t>{1, 3}));
}

TEST(ThreadPool, CoversTheRangeAndRethrows) {
  ThreadPool pool(3);
  std::vector<int> hits(100, 0);
  pool.parallel_for(100, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ++hits[size_t(i)];
  });
  EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), 100);
  EXPECT_THROW(pool.parallel_for(10, [](int64_t b, int64_t) {
                 if (b == 0) fail(ErrorCode::kInternal, "boom");
               }),
               Error);
}

}  // namespace
}  // namespace moe::cpu
