// Every CUDA kernel against its CPU counterpart on fresh random inputs, outputs poisoned before
// each run: relative error below 1e-5 for f32 paths, below 1e-2 where bf16 rounding enters. The
// quantised formats (int8, int4, fp8 with block scales) widen to exactly the CPU's dequantised
// values (checked bit for bit through the widening); the GEMV sums each 16-byte chunk's products
// before its one scale, the grouped GEMM multiplies them on the tensor cores (activations in
// three bf16 terms, a 16-column step's sum scaled once): rounding apart, 1e-5 (the grouped GEMM
// also 1e-6 over activations of any magnitude).
// Skips, saying why, when no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/router.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/expert_gemv.h"
#include "kernels/cuda/grouped_gemm.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/permute.h"
#include "runtime/model/expert_groups.h"

namespace moe::cuda {
namespace {

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (device_count() == 0) GTEST_SKIP() << "no CUDA device is present: GPU tests skipped";
  }
};

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A device copy of host data, freed at scope exit.
template <typename T>
struct DeviceBuffer {
  explicit DeviceBuffer(size_t n) : count(n) { check(cudaMalloc(reinterpret_cast<void**>(&ptr), n * sizeof(T) + 16), "cudaMalloc"); }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    check(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  void poison() { check(cudaMemset(ptr, 0xFF, count * sizeof(T)), "cudaMemset"); }  // NaN for floats
  std::vector<T> host() const {
    std::vector<T> out(count);
    check(cudaMemcpy(out.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
    return out;
  }
  T* ptr = nullptr;
  size_t count;
};

double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;  // unwritten (poisoned) or broken
    num += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// A random weight matrix in one format, on the host (the CPU kernels' view) and on the device;
// fp8 in square blocks of `group` (DeepSeek-V3's 128 x 128, or smaller to have many per matrix).
struct TestWeights {
  TestWeights(WeightFormat format, int group, int64_t rows, int64_t cols, uint32_t seed) {
    const auto w = random_floats(size_t(rows * cols), seed);
    if (format == WeightFormat::kFp8) {
      bytes.resize(size_t(rows * cols));
      const int64_t grid_cols = cpu::fp8_blocks(cols, group);
      scales.resize(size_t(cpu::fp8_blocks(rows, group) * grid_cols));
      cpu::fp8_quantize_blocks(w.data(), rows, cols, group, group, bytes.data(), scales.data());
      host = {bytes.data(), DType::kF8E4M3, rows, cols};
      host.block_scales = scales.data();
      host.block_rows = host.block_cols = group;
      host.block_stride = grid_cols;
    } else if (format == WeightFormat::kBF16) {
      bytes.resize(size_t(rows * cols) * 2);
      for (size_t i = 0; i < w.size(); ++i) {
        const uint16_t b = f32_to_bf16(w[i]);
        std::memcpy(bytes.data() + 2 * i, &b, 2);
      }
      host = {bytes.data(), DType::kBF16, rows, cols, nullptr, 0};
      group = 0;
    } else {
      const QuantFormat q{format == WeightFormat::kInt8 ? DType::kI8 : DType::kI4, group};
      bytes.resize(cpu::quantized_data_bytes(q, rows, cols));
      scales.resize(cpu::quantized_scale_count(q, rows, cols));
      cpu::quantize_rows(w.data(), rows, cols, q, bytes.data(), scales.data());
      host = {bytes.data(), q.dtype, rows, cols, scales.data(), group};
    }
    device_bytes = std::make_unique<DeviceBuffer<uint8_t>>(bytes);
    device_scales = std::make_unique<DeviceBuffer<float>>(scales.empty() ? std::vector<float>{0.0f} : scales);
    device = {device_bytes->ptr, scales.empty() ? nullptr : device_scales->ptr, format, rows, cols, group};
    if (format == WeightFormat::kFp8) {
      device.group_size = 0;
      device.block_rows = device.block_cols = group;
      device.block_stride = host.block_stride;
    }
  }
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  cpu::WeightMatrix host;
  std::unique_ptr<DeviceBuffer<uint8_t>> device_bytes;
  std::unique_ptr<DeviceBuffer<float>> device_scales;
  DeviceWeights device;
};

struct GemvCase {
  WeightFormat format;
  int group;
};

class GemvTest : public Gpu, public ::testing::WithParamInterface<GemvCase> {};

TEST_P(GemvTest, MatchesTheCpuMatmul) {
  const auto [format, group] = GetParam();
  const int64_t rows = 300, cols = 1024;
  const TestWeights w(format, group, rows, cols, 1);
  for (int m : {1, 3, 8}) {
    const auto x = random_floats(size_t(m * cols), uint32_t(10 + m));
    std::vector<float> ref(size_t(m * rows));
    cpu::matmul(x.data(), m, w.host, ref.data());
    DeviceBuffer<float> dx(x), dy(size_t(m * rows));
    dy.poison();
    check(expert_gemv(w.device, dx.ptr, m, dy.ptr, nullptr), "expert_gemv");
    check(cudaDeviceSynchronize(), "sync");
    EXPECT_LT(relative_error(dy.host(), ref), 1e-5) << "m = " << m;
  }
  // The widening: the same values the GEMV multiplies, in f32.
  std::vector<float> widened_ref(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) cpu::row_to_f32(w.host, r, widened_ref.data() + r * cols);
  DeviceBuffer<float> dwide(widened_ref.size());
  dwide.poison();
  check(dequantize_weights(w.device, dwide.ptr, nullptr), "dequantize_weights");
  EXPECT_EQ(relative_error(dwide.host(), widened_ref), 0.0);
}

// Experts of several shapes in one grouped launch (a bf16 width that is no multiple of the
// 32-column tile, rows no multiple of 64, one expert without rows), each against the CPU matmul.
TEST_P(GemvTest, GroupedGemmMatchesTheCpuMatmul) {
  const auto [format, group] = GetParam();
  struct Shape {
    int64_t rows, cols, m;
  };
  std::vector<Shape> shapes = {{300, 1024, 1}, {130, 512, 33}, {64, 256, 130}, {70, 256, 0}, {200, 768, 64}};
  if (format == WeightFormat::kBF16) shapes.push_back({70, 40, 65});
  if (format == WeightFormat::kFp8) shapes.push_back({70, 400, 65});  // partial edge blocks both ways
  std::vector<std::unique_ptr<TestWeights>> weights;
  std::vector<std::unique_ptr<DeviceBuffer<float>>> xs, ys;
  std::vector<std::vector<float>> refs;
  std::vector<GemmProblem> problems;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto [rows, cols, m] = shapes[i];
    weights.push_back(std::make_unique<TestWeights>(format, group, rows, cols, uint32_t(20 + i)));
    const auto x = random_floats(size_t(std::max<int64_t>(m, 1) * cols), uint32_t(40 + i));
    refs.emplace_back(size_t(m * rows));
    cpu::matmul(x.data(), m, weights.back()->host, refs.back().data());
    xs.push_back(std::make_unique<DeviceBuffer<float>>(x));
    ys.push_back(std::make_unique<DeviceBuffer<float>>(size_t(std::max<int64_t>(m, 1) * rows)));
    ys.back()->poison();
    problems.push_back({weights.back()->device, xs.back()->ptr, ys.back()->ptr, m});
  }
  check(grouped_expert_gemm(problems.data(), int(problems.size()), nullptr), "grouped_expert_gemm");
  check(cudaDeviceSynchronize(), "sync");
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (shapes[i].m == 0) continue;
    auto got = ys[i]->host();
    got.resize(refs[i].size());
    EXPECT_LT(relative_error(got, refs[i]), 1e-5) << "problem " << i;
  }
}

// The three bf16 terms carry an f32 activation's whole significand, at any magnitude: against the
// exact sums (in double) the products are off by no more than the f32 accumulation's rounding
// (measured on an H200: 1.3e-6 from the CPU's f32 sums in bf16, whose whole sum stays inside the
// tensor cores; one bf16 term would be off by ~3e-3, two by ~5e-6). An infinite or NaN
// activation gives what the CPU gives.
TEST_P(GemvTest, GroupedGemmKeepsF32PrecisionAndNonFiniteValues) {
  const auto [format, group] = GetParam();
  const int64_t rows = 200, cols = 512, m = 40;
  const TestWeights w(format, group, rows, cols, 5);
  auto x = random_floats(size_t(m * cols), 6);
  for (int64_t t = 0; t < m; ++t)
    for (int64_t c = 0; c < cols; ++c) x[size_t(t * cols + c)] = std::ldexp(x[size_t(t * cols + c)], int((t * 7 + c) % 41) - 20);
  std::vector<float> widened(size_t(rows * cols)), exact(size_t(m * rows)), ref(size_t(m * rows));
  for (int64_t r = 0; r < rows; ++r) cpu::row_to_f32(w.host, r, widened.data() + r * cols);
  for (int64_t t = 0; t < m; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (int64_t c = 0; c < cols; ++c) sum += double(x[size_t(t * cols + c)]) * double(widened[size_t(r * cols + c)]);
      exact[size_t(t * rows + r)] = float(sum);
    }
  DeviceBuffer<float> dx(x), dy(size_t(m * rows));
  dy.poison();
  const GemmProblem problem{w.device, dx.ptr, dy.ptr, m};
  check(grouped_expert_gemm(&problem, 1, nullptr), "grouped_expert_gemm");
  check(cudaDeviceSynchronize(), "sync");
  EXPECT_LT(relative_error(dy.host(), exact), 3e-6);

  x[size_t(3 * cols + 17)] = INFINITY;
  x[size_t(5 * cols + 100)] = -INFINITY;
  x[size_t(9 * cols + 300)] = NAN;
  cpu::matmul(x.data(), m, w.host, ref.data());
  DeviceBuffer<float> dx2(x);
  dy.poison();
  const GemmProblem with_non_finite{w.device, dx2.ptr, dy.ptr, m};
  check(grouped_expert_gemm(&with_non_finite, 1, nullptr), "grouped_expert_gemm");
  check(cudaDeviceSynchronize(), "sync");
  const auto got = dy.host();
  for (int64_t t : {3, 5, 9})
    for (int64_t r = 0; r < rows; ++r) {
      const float g = got[size_t(t * rows + r)], e = ref[size_t(t * rows + r)];
      ASSERT_FALSE(std::isfinite(e)) << "token " << t << " row " << r;
      EXPECT_EQ(std::isnan(g), std::isnan(e)) << "token " << t << " row " << r << ": " << g << " vs " << e;
      if (std::isinf(e)) {
        EXPECT_EQ(g, e) << "token " << t << " row " << r;
      }
    }
  EXPECT_TRUE(std::isfinite(got[size_t(4 * rows)]));  // the rows beside them stay finite
}

std::string gemv_case_name(const ::testing::TestParamInfo<GemvCase>& info) {
  static const char* const kNames[] = {"bf16", "int8", "int4", "fp8"};
  return std::string(kNames[int(info.param.format)]) + "_g" + std::to_string(info.param.group);
}

INSTANTIATE_TEST_SUITE_P(Formats, GemvTest,
                         ::testing::Values(GemvCase{WeightFormat::kBF16, 0}, GemvCase{WeightFormat::kInt8, 128},
                                           GemvCase{WeightFormat::kInt8, 32}, GemvCase{WeightFormat::kInt4, 128},
                                           GemvCase{WeightFormat::kInt4, 64}, GemvCase{WeightFormat::kFp8, 128},
                                           GemvCase{WeightFormat::kFp8, 32}),
                         gemv_case_name);

// A row's result is the same bits whether its expert has 33 rows or 130, launched alone or
// beside 60 others (two launches): the executor's batches, which depend on the budget, cannot
// change a token's output.
TEST_F(Gpu, GroupedGemmRowsDoNotDependOnTheirCompany) {
  const int64_t rows = 96, cols = 512;
  const TestWeights w(WeightFormat::kBF16, 0, rows, cols, 3);
  const auto x = random_floats(size_t(130 * cols), 4);
  DeviceBuffer<float> dx(x), alone(size_t(33 * rows)), big(size_t(130 * rows));
  std::vector<std::unique_ptr<DeviceBuffer<float>>> others;
  std::vector<GemmProblem> crowd = {{w.device, dx.ptr, big.ptr, 130}};
  for (int i = 0; i < 60; ++i) {
    others.push_back(std::make_unique<DeviceBuffer<float>>(size_t(5 * rows)));
    crowd.push_back({w.device, dx.ptr, others.back()->ptr, 5});
  }
  const GemmProblem single{w.device, dx.ptr, alone.ptr, 33};
  check(grouped_expert_gemm(&single, 1, nullptr), "grouped_expert_gemm");
  check(grouped_expert_gemm(crowd.data(), int(crowd.size()), nullptr), "grouped_expert_gemm");
  check(cudaDeviceSynchronize(), "sync");
  const auto a = alone.host(), b = big.host();
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  const auto last = others.back()->host();
  EXPECT_EQ(std::memcmp(last.data(), b.data(), last.size() * sizeof(float)), 0);
}

TEST_F(Gpu, RejectsBadGroupedGemmProblems) {
  DeviceBuffer<float> buf(1024);
  const DeviceWeights w{buf.ptr, nullptr, WeightFormat::kBF16, 8, 32, 0};
  const GemmProblem misaligned{w, buf.ptr + 1, buf.ptr, 2}, negative{w, buf.ptr, buf.ptr, -1},
      bad_shape{{buf.ptr, nullptr, WeightFormat::kBF16, 8, 12, 0}, buf.ptr, buf.ptr, 2};
  EXPECT_EQ(grouped_expert_gemm(&misaligned, 1, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(grouped_expert_gemm(&negative, 1, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(grouped_expert_gemm(&bad_shape, 1, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(grouped_expert_gemm(nullptr, 0, nullptr), cudaSuccess);
}

TEST_F(Gpu, RejectsBadGemvShapes) {
  DeviceBuffer<float> buf(64);
  EXPECT_EQ(expert_gemv({buf.ptr, nullptr, WeightFormat::kInt4, 2, 32, 0}, buf.ptr, 1, buf.ptr, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(expert_gemv({buf.ptr, nullptr, WeightFormat::kBF16, 2, 12, 0}, buf.ptr, 1, buf.ptr, nullptr), cudaErrorInvalidValue);
}

// Every e4m3fn byte widens to the CPU's value times its block's scale, bit for bit (NaN codes to
// NaN): two rows of all 256 codes under two blocks of scales, one of them tiny (products below
// f32's normal range must not flush to zero).
TEST_F(Gpu, Fp8DequantisesEveryCodeAsTheCpu) {
  const int64_t rows = 2, cols = 256;
  std::vector<uint8_t> codes(size_t(rows * cols));
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = uint8_t(i % 256);
  // A [1, 2] grid of 2 x 128 blocks (the first two scales), then a [2, 2] grid of 1 x 128 blocks.
  const std::vector<float> scales = {0.75f, 3.0e-36f, 1.0f, 448.0f};
  for (const int block_rows : {2, 1}) {
    DeviceBuffer<uint8_t> dcodes(codes);
    DeviceBuffer<float> dscales(scales), out(size_t(rows * cols));
    out.poison();
    DeviceWeights w{dcodes.ptr, dscales.ptr, WeightFormat::kFp8, rows, cols, 0};
    w.block_rows = block_rows;
    w.block_cols = 128;
    w.block_stride = 2;
    check(dequantize_weights(w, out.ptr, nullptr), "dequantize_weights");
    check(cudaDeviceSynchronize(), "sync");
    const std::vector<float> got = out.host();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const uint8_t code = codes[size_t(r * cols + c)];
        const float want = cpu::e4m3_value(code) * scales[size_t((r / block_rows) * 2 + c / 128)];
        const float g = got[size_t(r * cols + c)];
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(g)) << "code " << int(code);
        } else {
          EXPECT_EQ(std::memcmp(&g, &want, sizeof g), 0) << "code " << int(code) << " row " << r << ": " << g << " vs " << want;
        }
      }
  }
}

// Slices of a bigger FP8 matrix placed in its grid by offsets (a fused tensor's rows, DeepSeek's
// absorbed per-head W_UK^T at a column offset inside a block), blocks that are not square and
// edges that cut blocks: the GEMV, the widening and the grouped GEMM against the CPU on the same view.
TEST_F(Gpu, Fp8SlicesAtBlockOffsetsMatchTheCpu) {
  const int64_t full_rows = 300, full_cols = 448;
  const int block_rows = 48, block_cols = 64;
  const auto values = random_floats(size_t(full_rows * full_cols), 7);
  std::vector<uint8_t> data(size_t(full_rows * full_cols));
  const int64_t grid_cols = cpu::fp8_blocks(full_cols, block_cols);
  std::vector<float> grid(size_t(cpu::fp8_blocks(full_rows, block_rows) * grid_cols));
  cpu::fp8_quantize_blocks(values.data(), full_rows, full_cols, block_rows, block_cols, data.data(), grid.data());
  DeviceBuffer<float> dgrid(grid);
  struct Slice {
    int64_t row0, rows, col0, cols;
  };
  for (const Slice sl : {Slice{0, 300, 0, 448}, Slice{70, 130, 0, 448}, Slice{13, 40, 96, 160}, Slice{250, 50, 432, 16}}) {
    // The slice's bytes contiguous, as the CPU's views of a fused tensor's rows or a transposed copy are.
    std::vector<uint8_t> bytes(size_t(sl.rows * sl.cols));
    for (int64_t r = 0; r < sl.rows; ++r)
      std::memcpy(bytes.data() + r * sl.cols, data.data() + (sl.row0 + r) * full_cols + sl.col0, size_t(sl.cols));
    cpu::WeightMatrix host{bytes.data(), DType::kF8E4M3, sl.rows, sl.cols};
    host.block_scales = grid.data();
    host.block_rows = block_rows;
    host.block_cols = block_cols;
    host.block_stride = grid_cols;
    host.block_row0 = sl.row0;
    host.block_col0 = sl.col0;
    DeviceBuffer<uint8_t> dbytes(bytes);
    DeviceWeights w{dbytes.ptr, dgrid.ptr, WeightFormat::kFp8, sl.rows, sl.cols, 0};
    w.block_rows = block_rows;
    w.block_cols = block_cols;
    w.block_stride = grid_cols;
    w.block_row0 = sl.row0;
    w.block_col0 = sl.col0;
    for (int m : {1, 5}) {
      const auto x = random_floats(size_t(m * sl.cols), uint32_t(60 + m));
      std::vector<float> ref(size_t(m * sl.rows));
      cpu::matmul(x.data(), m, host, ref.data());
      DeviceBuffer<float> dx(x), dy(ref.size());
      dy.poison();
      check(expert_gemv(w, dx.ptr, m, dy.ptr, nullptr), "expert_gemv");
      check(cudaDeviceSynchronize(), "sync");
      EXPECT_LT(relative_error(dy.host(), ref), 1e-5) << "slice at " << sl.row0 << ", " << sl.col0 << " m " << m;
    }
    std::vector<float> widened_ref(size_t(sl.rows * sl.cols));
    for (int64_t r = 0; r < sl.rows; ++r) cpu::row_to_f32(host, r, widened_ref.data() + r * sl.cols);
    DeviceBuffer<float> dwide(widened_ref.size());
    dwide.poison();
    check(dequantize_weights(w, dwide.ptr, nullptr), "dequantize_weights");
    EXPECT_EQ(relative_error(dwide.host(), widened_ref), 0.0) << "slice at " << sl.row0 << ", " << sl.col0;
    // The grouped GEMM (a dense fp8 projection's prefill) reads the slice's scales as the GEMV does.
    const int64_t m = 40;
    const auto x = random_floats(size_t(m * sl.cols), 70);
    std::vector<float> ref(size_t(m * sl.rows));
    cpu::matmul(x.data(), m, host, ref.data());
    DeviceBuffer<float> dx(x), dy(ref.size());
    dy.poison();
    const GemmProblem problem{w, dx.ptr, dy.ptr, m};
    check(grouped_expert_gemm(&problem, 1, nullptr), "grouped_expert_gemm");
    check(cudaDeviceSynchronize(), "sync");
    EXPECT_LT(relative_error(dy.host(), ref), 1e-5) << "grouped GEMM, slice at " << sl.row0 << ", " << sl.col0;
  }
}

// FP8 shapes the kernels cannot take, refused before any launch: blocks or a column offset that
// split a 16-byte load, a row that is not whole loads, a grid narrower than the row's blocks.
TEST_F(Gpu, RejectsBadFp8Shapes) {
  DeviceBuffer<float> buf(1024), y(64);
  check(cudaMemset(buf.ptr, 0, 1024 * sizeof(float)), "cudaMemset");
  const auto fp8 = [&](int64_t cols, int block_cols, int64_t stride, int64_t col0) {
    DeviceWeights w{buf.ptr, buf.ptr, WeightFormat::kFp8, 4, cols, 0};
    w.block_rows = 128;
    w.block_cols = block_cols;
    w.block_stride = stride;
    w.block_col0 = col0;
    return expert_gemv(w, buf.ptr, 1, y.ptr, nullptr);
  };
  EXPECT_EQ(fp8(128, 128, 1, 0), cudaSuccess);
  check(cudaDeviceSynchronize(), "sync");
  EXPECT_EQ(fp8(128, 40, 4, 0), cudaErrorInvalidValue);
  EXPECT_EQ(fp8(120, 128, 1, 0), cudaErrorInvalidValue);
  EXPECT_EQ(fp8(256, 128, 1, 0), cudaErrorInvalidValue);
  EXPECT_EQ(fp8(128, 128, 2, 8), cudaErrorInvalidValue);
  DeviceWeights no_scales{buf.ptr, nullptr, WeightFormat::kFp8, 4, 128, 0};
  no_scales.block_rows = no_scales.block_cols = 128;
  no_scales.block_stride = 1;
  EXPECT_EQ(expert_gemv(no_scales, buf.ptr, 1, y.ptr, nullptr), cudaErrorInvalidValue);
}

TEST_F(Gpu, RmsNormSiluAndGelu) {
  const int64_t m = 5, d = 4096;
  const auto x = random_floats(size_t(m * d), 2), w = random_floats(size_t(d), 3), up = random_floats(size_t(m * d), 4);
  std::vector<float> ref(x.size());
  cpu::rms_norm(x.data(), ref.data(), m, d, w.data(), 1e-6f);
  DeviceBuffer<float> dx(x), dw(w), dout(x.size()), dup(up);
  dout.poison();
  check(rms_norm(dx.ptr, dout.ptr, m, d, dw.ptr, 1e-6f, nullptr), "rms_norm");
  EXPECT_LT(relative_error(dout.host(), ref), 1e-5);

  std::vector<float> silu_ref(x.size()), gelu_ref = x;
  for (size_t i = 0; i < x.size(); ++i) silu_ref[i] = x[i] / (1.0f + std::exp(-x[i])) * up[i];
  dout.poison();
  check(silu_mul(dx.ptr, dup.ptr, dout.ptr, int64_t(x.size()), nullptr), "silu_mul");
  EXPECT_LT(relative_error(dout.host(), silu_ref), 1e-5);
  for (float& v : gelu_ref) v = 0.5f * v * (1.0f + std::erf(v * 0.70710678f));
  check(gelu(dx.ptr, int64_t(x.size()), nullptr), "gelu");
  EXPECT_LT(relative_error(dx.host(), gelu_ref), 1e-5);

  // DS-MoE's expert activation: the CPU's gelu_tanh after adding the bias.
  std::vector<float> tanh_ref(x.size());
  for (size_t i = 0; i < x.size(); ++i) tanh_ref[i] = x[i] + w[i % size_t(d)];
  cpu::gelu_tanh(tanh_ref.data(), int64_t(tanh_ref.size()));
  DeviceBuffer<float> dx2(x);
  check(bias_gelu_tanh(dx2.ptr, dw.ptr, m, d, nullptr), "bias_gelu_tanh");
  EXPECT_LT(relative_error(dx2.host(), tanh_ref), 1e-5);
}

TEST_F(Gpu, LayerNormMatchesTheCpu) {
  const int64_t m = 6, d = 768;
  auto x = random_floats(size_t(m * d), 21);
  for (float& v : x) v = v * 3.0f + 1.5f;  // a mean far from zero
  const auto w = random_floats(size_t(d), 22), b = random_floats(size_t(d), 23);
  DeviceBuffer<float> dx(x), dw(w), db(b), dout(x.size());
  for (const bool affine : {true, false}) {
    std::vector<float> ref(x.size());
    cpu::layer_norm(x.data(), ref.data(), m, d, affine ? w.data() : nullptr, affine ? b.data() : nullptr, 1e-5f);
    dout.poison();
    check(layer_norm(dx.ptr, dout.ptr, m, d, affine ? dw.ptr : nullptr, affine ? db.ptr : nullptr, 1e-5f, nullptr), "layer_norm");
    EXPECT_LT(relative_error(dout.host(), ref), 1e-5) << "affine " << affine;
  }
}

TEST_F(Gpu, RopeMatchesTheCpu) {
  const int64_t n = 7, heads = 8, dim = 64;
  cpu::RopeParams p;
  p.rotary_dim = 64;
  p.theta = 1e6;
  const cpu::RopeTable table = cpu::make_rope_table(p, 4096);
  std::vector<int64_t> positions = {0, 1, 2, 100, 1000, 2047, 4095};
  auto x = random_floats(size_t(n * heads * dim), 5);
  DeviceBuffer<float> dx(x), dfreq(table.inv_freq);
  DeviceBuffer<int64_t> dpos(positions);
  cpu::apply_rope(x.data(), n, heads, dim, dim, positions.data(), table);
  check(apply_rope(dx.ptr, n, heads, dim, dim, dpos.ptr, dfreq.ptr, table.attention_scaling, nullptr), "apply_rope");
  EXPECT_LT(relative_error(dx.host(), x), 1e-5);
}

TEST_F(Gpu, AttentionPrefillAndLongDecode) {
  for (const auto& [n, first] : {std::pair<int64_t, int64_t>{9, 0}, {1, 20000}}) {
    const int64_t heads = 8, kv = 2, dim = 64, keys = first + n;
    const auto q = random_floats(size_t(n * heads * dim), 6), k = random_floats(size_t(keys * kv * dim), 7),
               v = random_floats(size_t(keys * kv * dim), 8);
    std::vector<float> ref(q.size());
    cpu::attention(q.data(), k.data(), v.data(), n, first, heads, kv, dim, 0.125f, ref.data());
    DeviceBuffer<float> dq(q), dk(k), dv(v), dout(q.size());
    dout.poison();
    check(attention(dq.ptr, dk.ptr, dv.ptr, n, first, heads, kv, dim, 0.125f, dout.ptr, nullptr), "attention");
    EXPECT_LT(relative_error(dout.host(), ref), 1e-5) << "tokens " << n << " after " << first;
  }
}

TEST_F(Gpu, AttentionWithASlidingWindowAndAHeadMask) {
  const int64_t n = 6, first = 3000, heads = 8, kv = 4, dim = 32, keys = first + n, window = 700;
  const auto q = random_floats(size_t(n * heads * dim), 26), k = random_floats(size_t(keys * kv * dim), 27),
             v = random_floats(size_t(keys * kv * dim), 28);
  std::vector<uint8_t> mask(size_t(n * heads));
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = uint8_t(i % 3 != 0);  // a third of the heads left out
  std::vector<float> ref(q.size());
  cpu::attention(q.data(), k.data(), v.data(), n, first, heads, kv, dim, 0.17f, ref.data(), window, mask.data());
  DeviceBuffer<float> dq(q), dk(k), dv(v), dout(q.size());
  DeviceBuffer<uint8_t> dmask(mask);
  dout.poison();
  check(attention(dq.ptr, dk.ptr, dv.ptr, n, first, heads, kv, dim, 0.17f, dout.ptr, nullptr, window, dmask.ptr), "attention");
  EXPECT_LT(relative_error(dout.host(), ref), 1e-5) << "one block per head";
  DeviceBuffer<float> workspace(static_cast<size_t>(attention_split_workspace(n, first, heads, dim, 256)));
  dout.poison();
  check(attention_split(dq.ptr, dk.ptr, dv.ptr, n, first, heads, kv, dim, 0.17f, dout.ptr, 256, workspace.ptr, nullptr, window,
                        dmask.ptr),
        "attention_split");
  EXPECT_LT(relative_error(dout.host(), ref), 1e-5) << "split over the keys";
}

TEST_F(Gpu, AttentionSplitOverTheKeysForLongContexts) {
  // 70000 keys would need 280 KB of scores in one block's shared memory: past the one-block kernel.
  for (const auto& [n, first, split] : {std::tuple<int64_t, int64_t, int64_t>{1, 70000, 1024}, {3, 5000, 777}, {9, 0, 4}}) {
    const int64_t heads = 8, kv = 2, dim = 64, keys = first + n;
    const auto q = random_floats(size_t(n * heads * dim), 16), k = random_floats(size_t(keys * kv * dim), 17),
               v = random_floats(size_t(keys * kv * dim), 18);
    std::vector<float> ref(q.size());
    cpu::attention(q.data(), k.data(), v.data(), n, first, heads, kv, dim, 0.125f, ref.data());
    DeviceBuffer<float> dq(q), dk(k), dv(v), dout(q.size());
    DeviceBuffer<float> workspace(size_t(attention_split_workspace(n, first, heads, dim, split)));
    workspace.poison();
    dout.poison();
    check(attention_split(dq.ptr, dk.ptr, dv.ptr, n, first, heads, kv, dim, 0.125f, dout.ptr, split, workspace.ptr, nullptr),
          "attention_split");
    EXPECT_LT(relative_error(dout.host(), ref), 1e-5) << "tokens " << n << " after " << first << ", split " << split;
  }
}

TEST_F(Gpu, PermuteInTheCpuGroupsOrderAndBack) {
  // A threshold-style routing: a varying number of experts per token.
  std::mt19937 rng(31);
  const int experts = 40;
  model::RoutingDecision routing;
  for (int t = 0; t < 300; ++t) {
    std::vector<int32_t> ids;
    for (int e = 0; e < experts; ++e)
      if (rng() % 9 == 0) ids.push_back(e);
    routing.add_token(ids, std::vector<float>(ids.size(), 1.0f));
  }
  const int64_t n = routing.num_assignments();
  std::vector<int32_t> want_order, want_offsets(size_t(experts) + 1, 0);
  for (const model::ExpertGroup& g : model::group_by_expert(routing)) {
    want_order.insert(want_order.end(), g.assignments.begin(), g.assignments.end());
    want_offsets[size_t(g.expert) + 1] = int32_t(g.assignments.size());
  }
  for (int e = 0; e < experts; ++e) want_offsets[size_t(e) + 1] += want_offsets[size_t(e)];
  DeviceBuffer<int32_t> dexperts(routing.experts), dorder(static_cast<size_t>(n)), doffsets(size_t(experts) + 1);
  dorder.poison();
  check(sort_by_expert(dexperts.ptr, n, experts, dorder.ptr, doffsets.ptr, nullptr), "sort_by_expert");
  EXPECT_EQ(dorder.host(), want_order);
  EXPECT_EQ(doffsets.host(), want_offsets);

  // Permute the tokens' rows into that order, and scatter them back to assignment order.
  const int64_t hidden = 96, tokens = routing.num_tokens();
  const auto x = random_floats(size_t(tokens * hidden), 32);
  std::vector<int32_t> token_of(static_cast<size_t>(n)), rows(static_cast<size_t>(n));
  for (int64_t t = 0; t < tokens; ++t)
    for (int32_t a = routing.offsets[size_t(t)]; a < routing.offsets[size_t(t) + 1]; ++a) token_of[size_t(a)] = int32_t(t);
  for (int64_t i = 0; i < n; ++i) rows[size_t(i)] = token_of[size_t(want_order[size_t(i)])];
  DeviceBuffer<float> dx(x), dpermuted(size_t(n * hidden)), dback(size_t(n * hidden));
  DeviceBuffer<int32_t> drows(rows);
  dpermuted.poison();
  dback.poison();
  check(gather_rows(dx.ptr, drows.ptr, n, hidden, dpermuted.ptr, nullptr), "gather_rows");
  check(scatter_rows(dpermuted.ptr, dorder.ptr, n, hidden, dback.ptr, nullptr), "scatter_rows");
  const auto back = dback.host();
  for (int64_t a = 0; a < n; ++a)
    ASSERT_EQ(std::memcmp(back.data() + a * hidden, x.data() + token_of[size_t(a)] * hidden, sizeof(float) * size_t(hidden)), 0)
        << "assignment " << a;
}

TEST_F(Gpu, ThresholdRoutingSelectsAsTheCpu) {
  const int64_t n = 50;
  const int experts = 40;
  auto logits = random_floats(size_t(n * experts), 33);
  for (float& v : logits) v *= 3.0f;  // peaked rows: some choose one expert, some several
  for (int e = 0; e < experts; ++e) logits[size_t(e)] = 0.0f;  // a flat row: every p * n = 1, none passes 1.5
  DeviceBuffer<float> dl(logits), dw(size_t(n * experts));
  DeviceBuffer<int32_t> dc(static_cast<size_t>(n));
  dw.poison();
  const float eps = 1.5f;
  check(route_threshold(dl.ptr, n, experts, eps, dw.ptr, dc.ptr, nullptr), "route_threshold");
  const auto weights = dw.host();
  const auto counts = dc.host();
  int several = 0;
  for (int64_t t = 0; t < n; ++t) {
    std::vector<float> p(logits.begin() + t * experts, logits.begin() + (t + 1) * experts);
    cpu::softmax(p.data(), experts);
    std::vector<int32_t> ids;
    std::vector<float> values;
    cpu::threshold_select(p.data(), experts, eps, ids, values);
    if (ids.empty()) {
      ids.assign(1, 0);
      values.assign(1, 0.0f);
      cpu::top_k(p.data(), experts, 1, ids.data(), values.data());
    }
    ASSERT_EQ(counts[size_t(t)], int32_t(ids.size())) << "token " << t;
    several += ids.size() > 1;
    std::vector<float> want(size_t(experts), 0.0f);
    for (size_t j = 0; j < ids.size(); ++j) want[size_t(ids[j])] = values[j];
    for (int e = 0; e < experts; ++e) EXPECT_NEAR(weights[size_t(t * experts + e)], want[size_t(e)], 1e-6) << t << "/" << e;
  }
  EXPECT_GT(several, 0);
  EXPECT_EQ(counts[0], 1);  // the flat row: nothing passed, the first expert kept
}

TEST_F(Gpu, RoutingAndCombine) {
  const int64_t n = 37;
  const int experts = 64, k = 6;
  const auto logits = random_floats(size_t(n * experts), 9);
  DeviceBuffer<float> dl(logits), dw(size_t(n * k));
  DeviceBuffer<int32_t> di(size_t(n * k));
  check(route_top_k(dl.ptr, n, experts, k, true, di.ptr, dw.ptr, nullptr), "route_top_k");
  const auto ids = di.host();
  const auto weights = dw.host();
  for (int64_t t = 0; t < n; ++t) {
    std::vector<float> p(logits.begin() + t * experts, logits.begin() + (t + 1) * experts);
    cpu::softmax(p.data(), experts);
    std::vector<int32_t> ref_ids(k);
    std::vector<float> ref_w(k);
    cpu::top_k(p.data(), experts, k, ref_ids.data(), ref_w.data());
    cpu::renormalize(ref_w.data(), k);
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(ids[size_t(t * k + j)], ref_ids[size_t(j)]);
      EXPECT_NEAR(weights[size_t(t * k + j)], ref_w[size_t(j)], 1e-6);
    }
  }
  const int64_t hidden = 512;
  const auto expert_out = random_floats(size_t(n * k * hidden), 10);
  std::vector<int32_t> rows(size_t(n * k));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = int32_t(i);
  std::vector<float> ref(size_t(n * hidden), 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int j = 0; j < k; ++j)
      for (int64_t i = 0; i < hidden; ++i) {
        const float product = weights[size_t(t * k + j)] * expert_out[size_t((t * k + j) * hidden + i)];
        ref[size_t(t * hidden + i)] += product;
      }
  DeviceBuffer<float> de(expert_out), dout(ref.size());
  DeviceBuffer<int32_t> dr(rows);
  dout.poison();
  check(weighted_combine(de.ptr, dr.ptr, dw.ptr, n, k, hidden, dout.ptr, nullptr), "weighted_combine");
  const auto got = dout.host();
  EXPECT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)), 0);  // same order, same bits
}

}  // namespace
}  // namespace moe::cuda
