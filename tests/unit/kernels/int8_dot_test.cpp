// The int8-activation mode (matmul.h's Activations::kInt8): the AVX512-VNNI path against the
// portable one bit for bit, batch invariance, exact integer sums where the quantisation is
// exact, NaN propagation, and its error against the exact mode.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_encoding.h"
#include "tests/unit/kernels/activation_mode_run.h"

namespace moe::cpu {
namespace {

std::vector<float> uniform(size_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(Int8Dot, VnniPathGivesThePortableBitsAndEachTokenItsOwn) {
  if (!cpu_has_int8_dot()) GTEST_SKIP() << "this CPU has no AVX512-VNNI: only the portable path runs (other tests)";
  std::mt19937 rng(11);
  ThreadPool two(2);
  const int groups[] = {32, 64, 128};
  const int64_t batches[] = {1, 2, 3, 4, 5, 7, 16};
  for (int it = 0; it < 200; ++it) {
    const DType dtype = it % 2 ? DType::kI4 : DType::kI8;
    const int group = groups[rng() % 3];
    const int64_t rows = 1 + int64_t(rng() % 23), cols = group * (1 + int64_t(rng() % 7)), m = batches[rng() % 7];
    const auto values = uniform(size_t(rows * cols), -1, 1, rng);
    const EncodedMatrix w = encode_matrix(values.data(), rows, cols, dtype, group);
    const auto x = uniform(size_t(m * cols), -2, 2, rng), bias = uniform(size_t(rows), -1, 1, rng);
    const float* b = it % 3 ? bias.data() : nullptr;
    const auto expected = run(Activations::kInt8, Isa::kPortable, x.data(), m, w.matrix, b, two);
    const auto got = run(Activations::kInt8, Isa::kAvx512, x.data(), m, w.matrix, b, two);
    ASSERT_TRUE(same_bits(expected.data(), got.data(), got.size()))
        << dtype_name(dtype) << " rows " << rows << " cols " << cols << " m " << m << " group " << group;
    for (int64_t t = 0; t < m; t += 3) {  // a token alone: the bits it has in the batch
      const auto alone = run(Activations::kInt8, Isa::kAvx512, x.data() + t * cols, 1, w.matrix, b, two);
      ASSERT_TRUE(same_bits(alone.data(), got.data() + t * rows, size_t(rows))) << "token " << t << " of " << m;
    }
  }
}

// The vector quantisation of the activations gives the portable one's bits on the values where
// a rounding could differ: ties at every half step, blocks of zeros, subnormals, large values,
// negative zeros, and (in one token) a NaN and an infinity, each in a block of its own.
TEST(Int8Dot, VectorQuantisationOfHardValuesIsThePortables) {
  if (!cpu_has_int8_dot()) GTEST_SKIP() << "this CPU has no AVX512-VNNI: only the portable quantisation runs";
  std::mt19937 rng(5);
  ThreadPool two(2);
  const int64_t cols = 32 * 12, rows = 24, m = 3;
  const auto values = uniform(size_t(rows * cols), -1, 1, rng);
  const EncodedMatrix w = encode_matrix(values.data(), rows, cols, DType::kI8, 32);
  std::vector<float> x(size_t(m * cols), 0.0f);
  for (int64_t t = 0; t < m; ++t) {
    float* row = x.data() + t * cols;
    for (int i = 0; i < 32; ++i) row[i] = (float(i) + 0.5f) * (t + 1.0f) / 2.0f;  // ties against a max of 127 steps
    row[31] = 127.0f * (t + 1.0f) / 2.0f;
    // block 1 stays zero
    for (int i = 0; i < 32; ++i) row[64 + i] = std::ldexp(float(i + 1), -149 + t);   // subnormals
    for (int i = 0; i < 32; ++i) row[96 + i] = 1e30f / float(i + 1) * (i % 2 ? -1.0f : 1.0f);  // large, the sums still finite
    for (int i = 0; i < 32; ++i) row[128 + i] = i % 3 ? -0.0f : 1e-3f * float(i);
    for (int i = 0; i < 32; ++i) row[160 + i] = uniform(1, -1, 1, rng)[0] * 1e-20f;
    if (t == 2) {  // the last token only: its outputs are all NaN, the others' stay comparable
      row[192 + 7] = NAN;
      row[224 + 3] = -INFINITY;
    }
    for (int i = 256; i < cols; ++i) row[i] = uniform(1, -3, 3, rng)[0];
  }
  const auto expected = run(Activations::kInt8, Isa::kPortable, x.data(), m, w.matrix, nullptr, two);
  const auto got = run(Activations::kInt8, Isa::kAvx512, x.data(), m, w.matrix, nullptr, two);
  ASSERT_TRUE(same_bits(expected.data(), got.data(), got.size()));
  EXPECT_TRUE(std::isfinite(got[0]) && std::isfinite(got[size_t(rows)]) && std::isnan(got[size_t(2 * rows)]));
}

// Activations that are integers with a block maximum of 127 quantise exactly (scale 1), so the
// result is the exact integer sum times the group scale: computed here in double.
TEST(Int8Dot, ExactQuantisationGivesTheIntegerSum) {
  std::mt19937 rng(3);
  ThreadPool two(2);
  for (DType dtype : {DType::kI8, DType::kI4}) {
    const int64_t rows = 9, cols = 256;
    const int levels = dtype == DType::kI8 ? 127 : 7;
    std::vector<float> values(size_t(rows * cols));
    for (float& v : values) v = float(int(rng() % (2 * levels + 1)) - levels) / float(levels);  // scale 1 / levels
    for (int64_t r = 0; r < rows; ++r) values[size_t(r * cols)] = 1.0f;  // each row's groups reach the extremes
    for (int64_t i = 0; i < rows * cols; i += 32) values[size_t(i)] = 1.0f;
    const EncodedMatrix w = encode_matrix(values.data(), rows, cols, dtype, 32);
    std::vector<float> x(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) x[size_t(c)] = c % 32 == 5 ? 127.0f : float(int(rng() % 255) - 127);
    for (Isa isa : {Isa::kPortable, Isa::kAvx512}) {
      const auto y = run(Activations::kInt8, isa, x.data(), 1, w.matrix, nullptr, two);
      for (int64_t r = 0; r < rows; ++r) {
        double sum = 0, magnitude = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double q = std::round(double(values[size_t(r * cols + c)]) * levels);
          const double term = q * double(w.scales[size_t(r * (cols / 32) + c / 32)]) * x[size_t(c)];
          sum += term;
          magnitude += std::fabs(term);
        }
        EXPECT_NEAR(y[size_t(r)], sum, 1e-6 * magnitude) << dtype_name(dtype) << " row " << r << " " << isa_name(isa);
      }
    }
  }
}

TEST(Int8Dot, ANonFiniteActivationMakesItsOutputsNan) {
  std::mt19937 rng(5);
  ThreadPool one(1);
  const auto values = uniform(size_t(4 * 64), -1, 1, rng);
  const EncodedMatrix w = encode_matrix(values.data(), 4, 64, DType::kI4, 32);
  auto x = uniform(64, -1, 1, rng);
  x[40] = INFINITY;
  for (Isa isa : {Isa::kPortable, Isa::kAvx512})
    for (float y : run(Activations::kInt8, isa, x.data(), 1, w.matrix, nullptr, one)) EXPECT_TRUE(std::isnan(y));
}

// A stored int8 weight of -128 (our quantiser never writes one) against a negative activation
// is the exact product on every path (the vector path's w + 128 is 0 there, and its correction
// supplies all of it).
TEST(Int8Dot, MinusOneTwentyEightMeetingANegativeActivationIsExact) {
  ThreadPool one(1);
  std::vector<int8_t> data(64, 0);
  data[3] = -128;
  data[4] = 127;
  const float scale[2] = {1.0f, 1.0f};
  const WeightMatrix w{data.data(), DType::kI8, 1, 64, scale, 32};
  std::vector<float> x(64, 0.0f);
  x[3] = -127.0f;  // the block's maximum: q = -127, scale 1
  x[4] = -127.0f;
  for (Isa isa : {Isa::kPortable, Isa::kAvx512}) {
    const auto y = run(Activations::kInt8, isa, x.data(), 1, w, nullptr, one);
    EXPECT_EQ(y[0], 128.0f * 127.0f - 127.0f * 127.0f) << isa_name(isa);
  }
}

TEST(Int8Dot, ErrorAgainstTheExactModeIsSmallAndOtherFormatsStayExact) {
  std::mt19937 rng(9);
  ThreadPool two(2);
  const int64_t rows = 64, cols = 1024, m = 4;
  const auto values = uniform(size_t(rows * cols), -1, 1, rng);
  const auto x = uniform(size_t(m * cols), -1, 1, rng);
  for (DType dtype : {DType::kI8, DType::kI4}) {
    const EncodedMatrix w = encode_matrix(values.data(), rows, cols, dtype, 32);
    const auto exact = run(Activations::kExact, Isa::kAvx512, x.data(), m, w.matrix, nullptr, two);
    const auto lossy = run(Activations::kInt8, Isa::kAvx512, x.data(), m, w.matrix, nullptr, two);
    double err = 0, norm = 0;
    for (size_t i = 0; i < exact.size(); ++i) {
      err += (lossy[i] - exact[i]) * double(lossy[i] - exact[i]);
      norm += double(exact[i]) * exact[i];
    }
    const double relative = std::sqrt(err / norm);
    std::printf("int8 activations against exact, %s weights: relative RMS error %.3g%%\n", dtype_name(dtype).data(), 100 * relative);
    EXPECT_GT(relative, 0.0);   // the mode is on
    EXPECT_LT(relative, 0.01);  // activations rounded to 1/254 of their block's range
  }
  // bf16 and int8 in groups of 8 are not the mode's: the exact bits.
  const EncodedMatrix bf16 = encode_matrix(values.data(), rows, cols, DType::kBF16);
  const EncodedMatrix grouped8 = encode_matrix(values.data(), rows, cols, DType::kI8, 8);
  for (const WeightMatrix* w : {&bf16.matrix, &grouped8.matrix}) {
    const auto exact = run(Activations::kExact, Isa::kAvx512, x.data(), m, *w, nullptr, two);
    const auto mode = run(Activations::kInt8, Isa::kAvx512, x.data(), m, *w, nullptr, two);
    EXPECT_TRUE(same_bits(exact.data(), mode.data(), exact.size())) << dtype_name(w->dtype);
  }
}

}  // namespace
}  // namespace moe::cpu
