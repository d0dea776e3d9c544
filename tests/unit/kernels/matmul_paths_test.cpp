// The matmul's instruction-set paths against each other, bit for bit: every path the CPU has
// (AVX-512, AVX2, portable) over random shapes that reach every tile, tail and group case, in
// small batches (weights widened in registers) and large ones (widened into a panel first).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include <sys/mman.h>
#include <unistd.h>

#include "kernels/cpu/compute_peak.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_encoding.h"

namespace moe::cpu {
namespace {

EncodedMatrix random_matrix(DType dtype, int64_t rows, int64_t cols, int group_size, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> values(size_t(rows * cols));
  for (float& v : values) v = d(rng);
  return encode_matrix(values.data(), rows, cols, dtype, group_size);
}

std::vector<Isa> available_isas() {
  const Isa before = active_isa();
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    set_isa(isa);
    if (active_isa() == isa) isas.push_back(isa);
  }
  set_isa(before);
  return isas;
}

std::vector<float> run(Isa isa, const float* x, int64_t m, const WeightMatrix& w, const float* bias, ThreadPool& pool) {
  const Isa before = active_isa();
  set_isa(isa);
  std::vector<float> y(size_t(m * w.rows), NAN);
  matmul(x, m, w, y.data(), bias, pool);
  set_isa(before);
  return y;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(MatmulPaths, EveryIsaGivesThePortableBits) {
  const auto isas = available_isas();
  std::printf("matmul paths on this CPU:");
  for (Isa isa : isas) std::printf(" %s", isa_name(isa).data());
  std::printf("\n");
  std::mt19937 rng(7);
  ThreadPool two(2);
  const DType dtypes[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kI8, DType::kI4};
  const int groups[] = {8, 16, 24, 32, 64, 128};
  const int64_t batches[] = {1, 2, 3, 4, 5, 7, 9, 13, 14, 16, 33};
  for (int it = 0; it < 300; ++it) {
    const DType dtype = dtypes[it % 5];
    const bool quantised = dtype == DType::kI8 || dtype == DType::kI4;
    const int group = quantised ? groups[rng() % 6] : 0;
    const int64_t rows = 1 + int64_t(rng() % 41);
    const int64_t cols = quantised ? group * (1 + int64_t(rng() % 6)) : 1 + int64_t(rng() % 300);
    const int64_t m = batches[rng() % 11];
    const EncodedMatrix w = random_matrix(dtype, rows, cols, group, rng);
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> x(size_t(m * cols)), bias(static_cast<size_t>(rows));
    for (float& v : x) v = d(rng);
    for (float& v : bias) v = d(rng);
    const float* b = it % 2 ? bias.data() : nullptr;
    const auto expected = run(Isa::kPortable, x.data(), m, w.matrix, b, two);
    for (Isa isa : isas) {
      const auto got = run(isa, x.data(), m, w.matrix, b, two);
      ASSERT_TRUE(same_bits(expected, got)) << isa_name(isa) << " " << dtype_name(dtype) << " rows " << rows << " cols "
                                            << cols << " m " << m << " group " << group;
      // A token alone (the decode path) gives the bits it has in the batch (the panel path).
      const int64_t t = int64_t(rng() % uint64_t(m));
      const auto alone = run(isa, x.data() + t * cols, 1, w.matrix, b, two);
      ASSERT_TRUE(same_bits(alone, std::vector<float>(got.begin() + t * rows, got.begin() + (t + 1) * rows)))
          << isa_name(isa) << " " << dtype_name(dtype) << " token " << t << " of " << m;
    }
  }
}

// Rows longer than one pass of the batch path (1024 columns) are summed over several passes,
// carrying each lane between them: the bits are those of one pass.
TEST(MatmulPaths, LongRowsGiveThePortableBits) {
  std::mt19937 rng(11);
  ThreadPool two(2);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16, DType::kI8, DType::kI4})
    for (int64_t cols : {int64_t{1032}, int64_t{2048}, int64_t{3112}}) {  // a tail alone in the last pass; none; both
      const EncodedMatrix w = random_matrix(dtype, 9, cols, 8, rng);
      for (int64_t m : {int64_t{4}, int64_t{7}, int64_t{16}}) {  // the streamed tiles and the panel
        std::vector<float> x(size_t(m * cols));
        for (float& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
        const auto expected = run(Isa::kPortable, x.data(), m, w.matrix, nullptr, two);
        for (Isa isa : available_isas())
          EXPECT_TRUE(same_bits(expected, run(isa, x.data(), m, w.matrix, nullptr, two)))
              << isa_name(isa) << " " << dtype_name(dtype) << " cols " << cols << " m " << m;
      }
    }
}

// int8/int4 rows in groups of 32 (a scale a block: the streamed decode tiles walk them a cache
// line of each row at a time, whatever is left over after) at the models' lengths, in every
// small batch and with rows left over after the last whole tile.
TEST(MatmulPaths, GroupOf32RowsGiveThePortableBits) {
  std::mt19937 rng(13);
  ThreadPool two(2);
  for (DType dtype : {DType::kI8, DType::kI4})
    for (int64_t cols : {int64_t{96}, int64_t{1024}, int64_t{3584}, int64_t{1056}}) {
      const EncodedMatrix w = random_matrix(dtype, 23, cols, 32, rng);
      for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{3}}) {
        std::vector<float> x(size_t(m * cols));
        for (float& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
        const auto expected = run(Isa::kPortable, x.data(), m, w.matrix, nullptr, two);
        for (Isa isa : available_isas())
          EXPECT_TRUE(same_bits(expected, run(isa, x.data(), m, w.matrix, nullptr, two)))
              << isa_name(isa) << " " << dtype_name(dtype) << " cols " << cols << " m " << m;
      }
    }
}

// Weights and activations that end right before an unmapped page: no path reads past a row's
// last column (the tails are masked loads, not whole blocks).
TEST(MatmulPaths, NoPathReadsPastTheEndOfItsInputs) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  auto* region = static_cast<char*>(mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(region, MAP_FAILED);
  ASSERT_EQ(mprotect(region + page, page, PROT_NONE), 0);
  ASSERT_EQ(mprotect(region + 3 * page, page, PROT_NONE), 0);
  std::mt19937 rng(3);
  ThreadPool one(1);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16, DType::kI8, DType::kI4}) {
    const bool quantised = dtype == DType::kI8 || dtype == DType::kI4;
    const int64_t rows = 3, cols = quantised ? 40 : 37;  // tails of 8 and 5 columns
    const EncodedMatrix w = random_matrix(dtype, rows, cols, quantised ? 8 : 0, rng);
    const size_t bytes = dtype_bytes(dtype, size_t(rows * cols));
    char* data = region + page - bytes;  // the last byte of the weights is the page's last
    std::memcpy(data, w.matrix.data, bytes);
    WeightMatrix guarded = w.matrix;
    guarded.data = data;
    for (int64_t m : {1, 5}) {
      float* x = reinterpret_cast<float*>(region + 3 * page) - m * cols;
      for (int64_t i = 0; i < m * cols; ++i) x[i] = float(i % 7) - 3.0f;
      const std::vector<float> xs(x, x + m * cols);
      const auto expected = run(Isa::kPortable, xs.data(), m, w.matrix, nullptr, one);
      for (Isa isa : available_isas())
        EXPECT_TRUE(same_bits(expected, run(isa, x, m, guarded, nullptr, one))) << isa_name(isa) << " " << dtype_name(dtype);
    }
  }
  munmap(region, 4 * page);
}

// Rows read with a stride (attention's keys inside the KV cache) give the bits of the same rows
// stored contiguously.
TEST(MatmulPaths, StridedRowsGiveTheBitsOfContiguousOnes) {
  std::mt19937 rng(5);
  ThreadPool two(2);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int64_t rows = 21, cols = 72, stride = 100, m = 5;
    const EncodedMatrix dense = random_matrix(dtype, rows, cols, 0, rng);
    const size_t elem = dtype_bytes(dtype, 1);
    std::vector<uint8_t> spaced(size_t(rows * stride) * elem, 0xFF);  // NaN-ish filler between the rows
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(spaced.data() + size_t(r * stride) * elem, static_cast<const uint8_t*>(dense.matrix.data) + size_t(r * cols) * elem,
                  size_t(cols) * elem);
    WeightMatrix strided = dense.matrix;
    strided.data = spaced.data();
    strided.row_stride = stride;
    std::vector<float> x(size_t(m * cols));
    for (float& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    for (Isa isa : available_isas())
      for (int64_t tokens : {int64_t{1}, m})
        EXPECT_TRUE(same_bits(run(isa, x.data(), tokens, dense.matrix, nullptr, two), run(isa, x.data(), tokens, strided, nullptr, two)))
            << isa_name(isa) << " " << dtype_name(dtype) << " tokens " << tokens;
  }
}

// Products of one input in one call (gate and up, q k and v) give each matrix's own matmul bits,
// in every activation mode, whether their matrices share a preparation or not (mixed formats, more
// kinds than the call keeps at once), on one thread or two, alone or batched.
TEST(MatmulPaths, SameInputProductsGiveTheBitsOfOneMatmulEach) {
  std::mt19937 rng(11);
  ThreadPool one(1), two(2);
  const DType dtypes[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kI8, DType::kI4};
  std::vector<Activations> modes = {Activations::kExact};
  if (cpu_has_int8_dot()) modes.push_back(Activations::kInt8);
  if (cpu_has_bf16_dot()) modes.push_back(Activations::kBf16);
  for (int it = 0; it < 60; ++it) {
    const int64_t cols = 64 * (1 + int64_t(rng() % 5)), m = std::vector<int64_t>{1, 2, 5, 40, 70}[rng() % 5];
    const int count = 1 + int(rng() % 6);  // up to 6: past the call's four kinds at once
    std::vector<EncodedMatrix> mats;
    for (int i = 0; i < count; ++i) {
      const DType dtype = it % 3 == 0 ? DType::kBF16 : dtypes[rng() % 5];
      const int group = dtype == DType::kI8 || dtype == DType::kI4 ? std::vector<int>{32, 64}[rng() % 2] : 0;
      mats.push_back(random_matrix(dtype, 1 + int64_t(rng() % 300), cols, group, rng));
    }
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> x(size_t(m * cols)), bias(300);
    for (float& v : x) v = d(rng);
    for (float& v : bias) v = d(rng);
    for (const Activations mode : modes) {
      const ScopedActivations scoped(mode);
      for (ThreadPool* pool : {&one, &two}) {
        std::vector<std::vector<float>> want, got;
        std::vector<SameInputProduct> products;
        for (int i = 0; i < count; ++i) {
          const WeightMatrix& w = mats[size_t(i)].matrix;
          const float* b = i % 2 ? bias.data() : nullptr;
          want.emplace_back(size_t(m * w.rows), NAN);
          matmul(x.data(), m, w, want.back().data(), b, *pool);
          got.emplace_back(size_t(m * w.rows), NAN);
        }
        for (int i = 0; i < count; ++i) products.push_back({&mats[size_t(i)].matrix, got[size_t(i)].data(), i % 2 ? bias.data() : nullptr});
        matmul_same_input(x.data(), m, products, *pool);
        for (int i = 0; i < count; ++i)
          ASSERT_TRUE(same_bits(want[size_t(i)], got[size_t(i)]))
              << "product " << i << " of " << count << " (" << dtype_name(mats[size_t(i)].matrix.dtype) << "), m " << m << ", cols "
              << cols << ", mode " << activations_name(mode) << ", threads " << pool->size();
      }
    }
  }
}

TEST(MatmulPaths, AskingForMoreThanTheCpuHasGivesItsBest) {
  const Isa before = active_isa();
  const auto isas = available_isas();
  set_isa(Isa::kAvx512);
  EXPECT_EQ(active_isa(), isas.back());
  set_isa(Isa::kPortable);
  EXPECT_EQ(active_isa(), Isa::kPortable);
  set_isa(before);
}

TEST(ComputePeak, MeasuresSomething) {
  ThreadPool one(1);
  const double flops = measure_fma_peak(one, 1);
  EXPECT_GT(flops, 1e8);  // any CPU of this century: well above 0.1 GFLOP/s
}

}  // namespace
}  // namespace moe::cpu
