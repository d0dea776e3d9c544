// The bf16-activation mode (matmul.h's Activations::kBf16): the AVX512-BF16 path against the
// portable one bit for bit, batch invariance, hand-computed values of the rule (bf16 rounding of
// the activations, subnormals read as zeros, NaN), and its error against the exact mode.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_encoding.h"
#include "tests/unit/kernels/activation_mode_run.h"

namespace moe::cpu {
namespace {

uint16_t bf16_of(float v) {  // v must be a bf16 value
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  EXPECT_EQ(bits & 0xFFFFu, 0u) << v << " is not a bf16 value";
  return uint16_t(bits >> 16);
}

std::vector<uint16_t> random_bf16(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0, 1);
  std::vector<uint16_t> v(n);
  for (auto& h : v) {
    const float f = d(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    h = uint16_t(bits >> 16);
  }
  return v;
}

TEST(Bf16Dot, Avx512PathGivesThePortableBitsAndEachTokenItsOwn) {
  if (!cpu_has_bf16_dot()) GTEST_SKIP() << "this CPU has no AVX512-BF16: only the portable path runs (other tests)";
  std::mt19937 rng(21);
  ThreadPool two(2);
  const int64_t batches[] = {1, 2, 3, 4, 5, 7, 16, 33};
  std::normal_distribution<float> d(0, 2);
  for (int it = 0; it < 200; ++it) {
    const int64_t rows = 1 + int64_t(rng() % 40), cols = 1 + int64_t(rng() % 300), m = batches[rng() % 8];
    const auto data = random_bf16(size_t(rows * cols), rng);
    const WeightMatrix w{data.data(), DType::kBF16, rows, cols};
    std::vector<float> x(static_cast<size_t>(m * cols)), bias(static_cast<size_t>(rows));
    for (float& v : x) v = d(rng);
    for (float& v : bias) v = d(rng);
    const float* b = it % 3 ? bias.data() : nullptr;
    const auto expected = run(Activations::kBf16, Isa::kPortable, x.data(), m, w, b, two);
    const auto got = run(Activations::kBf16, Isa::kAvx512, x.data(), m, w, b, two);
    ASSERT_TRUE(same_bits(expected.data(), got.data(), got.size())) << "rows " << rows << " cols " << cols << " m " << m;
    for (int64_t t = 0; t < m; t += 4) {  // a token alone: the bits it has in the batch
      const auto alone = run(Activations::kBf16, Isa::kAvx512, x.data() + t * cols, 1, w, b, two);
      ASSERT_TRUE(same_bits(alone.data(), got.data() + t * rows, size_t(rows))) << "token " << t << " of " << m;
    }
  }
}

// Values worked by hand from the rule, on every path.
TEST(Bf16Dot, TheRulesValues) {
  ThreadPool one(1);
  std::vector<Isa> isas = {Isa::kPortable};
  if (cpu_has_bf16_dot()) isas.push_back(Isa::kAvx512);
  // Row 0: columns 0, 1 (lane 0: odd then even) and 40 (block 1): 1.5 * 3 + 2 * -0.25 + 4 * 0.5.
  // Row 1: 1 + 2^-8 rounds to 1 as bf16 (a tie, to even): the exact mode gives 1.00390625.
  // Row 2: a subnormal weight reads as zero (x = 1e30 would make it 9.2e-11).
  const int64_t cols = 41;
  std::vector<uint16_t> data(size_t(3 * cols), 0);
  data[0] = bf16_of(3.0f), data[1] = bf16_of(-0.25f), data[40] = bf16_of(0.5f);
  data[cols + 2] = bf16_of(1.0f);
  data[2 * cols + 3] = 0x0001;  // the smallest subnormal
  const WeightMatrix w{data.data(), DType::kBF16, 3, cols};
  std::vector<float> x(size_t(cols), 0.0f);
  x[0] = 1.5f, x[1] = 2.0f, x[40] = 4.0f, x[2] = 1.00390625f, x[3] = 1e30f;
  for (Isa isa : isas) {
    const auto y = run(Activations::kBf16, isa, x.data(), 1, w, nullptr, one);
    EXPECT_EQ(y[0], 6.0f) << isa_name(isa);
    EXPECT_EQ(y[1], 1.0f) << isa_name(isa);
    EXPECT_EQ(y[2], 0.0f) << isa_name(isa);
    std::vector<float> tiny = x;  // a subnormal activation reads as zero too
    tiny[0] = 1e-40f, tiny[1] = tiny[40] = 0.0f;
    EXPECT_EQ(run(Activations::kBf16, isa, tiny.data(), 1, w, nullptr, one)[0], 0.0f) << isa_name(isa);
    std::vector<float> nan = x;
    nan[5] = NAN;
    for (float v : run(Activations::kBf16, isa, nan.data(), 1, w, nullptr, one)) EXPECT_TRUE(std::isnan(v)) << isa_name(isa);
  }
  const auto exact = run(Activations::kExact, Isa::kPortable, x.data(), 1, w, nullptr, one);
  EXPECT_EQ(exact[1], 1.00390625f);
}

TEST(Bf16Dot, ErrorAgainstTheExactModeIsSmallAndOtherFormatsStayExact) {
  std::mt19937 rng(5);
  ThreadPool two(2);
  const int64_t rows = 64, cols = 1024, m = 4;
  const auto data = random_bf16(size_t(rows * cols), rng);
  const WeightMatrix w{data.data(), DType::kBF16, rows, cols};
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> x(size_t(m * cols));
  for (float& v : x) v = d(rng);
  const auto exact = run(Activations::kExact, Isa::kAvx512, x.data(), m, w, nullptr, two);
  const auto lossy = run(Activations::kBf16, Isa::kAvx512, x.data(), m, w, nullptr, two);
  double err = 0, norm = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    err += (lossy[i] - exact[i]) * double(lossy[i] - exact[i]);
    norm += exact[i] * double(exact[i]);
  }
  const double relative = std::sqrt(err / norm);
  EXPECT_GT(relative, 0.0);  // it is lossy
  EXPECT_LT(relative, 0.01);
  // f32 weights are not bf16: the mode leaves them exact.
  std::vector<float> f32(size_t(rows * cols));
  for (size_t i = 0; i < f32.size(); ++i) {
    const uint32_t bits = uint32_t(data[i]) << 16;
    std::memcpy(&f32[i], &bits, sizeof bits);
  }
  const WeightMatrix wf{f32.data(), DType::kF32, rows, cols};
  const auto a = run(Activations::kExact, Isa::kAvx512, x.data(), m, wf, nullptr, two);
  const auto b = run(Activations::kBf16, Isa::kAvx512, x.data(), m, wf, nullptr, two);
  EXPECT_TRUE(same_bits(a.data(), b.data(), a.size()));
}

}  // namespace
}  // namespace moe::cpu
