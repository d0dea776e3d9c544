// The executor's CUDA device against the CPU kernels on a random expert: bf16 slots filled
// through both upload paths (pageable and pinned sources), int8 and int4 copies streamed from
// the host, FP8 experts with block scales in slots and streamed, SwiGLU and GeLU forms, at row
// counts that take the GEMV (1..31, in chunks of eight) and the grouped GEMM (32 and up, over
// several passes), alone and in batches. Relative error below 1e-5 (the same weights, summed in
// another order). Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cuda/device.h"
#include "offload/cache/host_pool.h"
#include "offload/gpu/cuda_expert_device.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

constexpr int64_t kHidden = 256, kWidth = 384;

std::vector<float> random_floats(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - ref[i]) * double(got[i] - ref[i]);
    den += double(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

// A random expert in host memory, laid out as an expert slot.
struct HostExpert {
  explicit HostExpert(bool gated) {
    model::GatedMlp mlp;
    const auto bf16 = [](int64_t rows, int64_t cols, uint32_t seed) {
      Tensor t = Tensor::empty(DType::kBF16, {rows, cols});
      const std::vector<float> v = random_floats(size_t(rows * cols), seed, 0.1f);
      for (size_t i = 0; i < v.size(); ++i) t.data<uint16_t>()[i] = f32_to_bf16(v[i]);
      return t;
    };
    if (gated) mlp.gate.weight = bf16(kWidth, kHidden, 1);
    mlp.up.weight = bf16(kWidth, kHidden, 2);
    mlp.down.weight = bf16(kHidden, kWidth, 3);
    if (!gated) {
      mlp.up.bias = Tensor::empty(DType::kF32, {kWidth});
      const std::vector<float> b = random_floats(size_t(kWidth), 4, 0.5f);
      std::copy(b.begin(), b.end(), mlp.up.bias.data<float>());
    }
    layout = ExpertLayout::of(mlp);
    bytes.resize(layout.bytes);
    layout.pack(mlp, bytes.data());
  }
  // An FP8 SwiGLU expert as DeepSeek-V3 releases them: e4m3 bytes and f32 block scales.
  HostExpert(int block_rows, int block_cols) {
    model::GatedMlp mlp;
    const auto fp8 = [&](int64_t rows, int64_t cols, uint32_t seed) {
      model::Linear l;
      l.weight = Tensor::empty(DType::kF8E4M3, {rows, cols});
      l.block_scales = Tensor::empty(DType::kF32, {cpu::fp8_blocks(rows, block_rows), cpu::fp8_blocks(cols, block_cols)});
      l.block_rows = block_rows;
      l.block_cols = block_cols;
      const std::vector<float> v = random_floats(size_t(rows * cols), seed, 0.1f);
      cpu::fp8_quantize_blocks(v.data(), rows, cols, block_rows, block_cols, l.weight.data<uint8_t>(), l.block_scales.data<float>());
      return l;
    };
    mlp.gate = fp8(kWidth, kHidden, 1);
    mlp.up = fp8(kWidth, kHidden, 2);
    mlp.down = fp8(kHidden, kWidth, 3);
    layout = ExpertLayout::of(mlp);
    bytes.resize(layout.bytes);
    layout.pack(mlp, bytes.data());
  }
  ExpertLayout layout;
  std::vector<std::byte> bytes;
};

std::vector<float> cpu_expert(const model::GatedMlpMatrices& w, const std::vector<float>& x, int64_t m) {
  std::vector<float> out(size_t(m * kHidden)), scratch;
  model::run_gated_mlp(w, x.data(), m, out.data(), scratch);
  return out;
}

class CudaDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device is present: GPU tests skipped";
  }
};

TEST_F(CudaDevice, ResidentExpertsMatchTheCpuThroughEitherUploadPath) {
  for (const bool gated : {true, false}) {
    const HostExpert expert(gated);
    cuda::DeviceArena arena(0, 2 * expert.layout.bytes);
    CudaExpertDevice device(arena, expert.layout);
    std::byte* slots = device.allocate(2 * expert.layout.bytes);
    {  // slot 0 from pageable memory (through the staging ring), in odd pieces
      auto upload = device.begin_upload(slots);
      const uint64_t piece = 1000 * 64 + 8;
      for (uint64_t at = 0; at < expert.layout.bytes; at += piece)
        upload->write(at, expert.bytes.data() + at, std::min(piece, expert.layout.bytes - at));
      upload->finish();
    }
    HostPool pinned(expert.layout.bytes);  // slot 1 from pinned memory, copied where it is
    const auto block = pinned.allocate(expert.layout.bytes);
    ASSERT_TRUE(block);
    std::copy(expert.bytes.begin(), expert.bytes.end(), block->data);
    {
      auto upload = device.begin_upload(slots + expert.layout.bytes);
      upload->write(0, block->data, expert.layout.bytes);
      upload->finish();
    }
    const model::GatedMlpMatrices host = expert.layout.views(expert.bytes.data());
    for (const int64_t m : {1, 3, 8, 13, 31, 32, 77, 600}) {
      const std::vector<float> x = random_floats(size_t(m * kHidden), uint32_t(m), 1.0f);
      const std::vector<float> want = cpu_expert(host, x, m);
      for (int slot = 0; slot < 2; ++slot) {
        std::vector<float> got(want.size(), NAN);
        device.run_expert(expert.layout.views(slots + slot * expert.layout.bytes), x.data(), m, got.data());
        EXPECT_LT(relative_error(got, want), 1e-5) << "gated " << gated << " m " << m << " slot " << slot;
      }
    }
  }
}

// A layer's experts in one batch (GEMV and GEMM experts mixed, one straddling two passes) give
// each expert the bits it gets alone: a batch's make-up depends on the budget, results must not.
TEST_F(CudaDevice, ABatchGivesEachExpertItsBitsAlone) {
  for (const bool gated : {true, false}) {
    const HostExpert expert(gated);
    const int kExperts = 5;
    cuda::DeviceArena arena(0, kExperts * expert.layout.bytes);
    CudaExpertDevice device(arena, expert.layout);
    std::byte* slots = device.allocate(kExperts * expert.layout.bytes);
    for (int e = 0; e < kExperts; ++e) {
      auto upload = device.begin_upload(slots + e * expert.layout.bytes);
      upload->write(0, expert.bytes.data(), expert.layout.bytes);
      upload->finish();
    }
    const int64_t rows[kExperts] = {1, 40, 7, 500, 33};  // 40 + 7 + 500 straddles the 512-row pass
    std::vector<std::vector<float>> x, alone, batched;
    std::vector<ExpertRun> runs;
    for (int e = 0; e < kExperts; ++e) {
      x.push_back(random_floats(size_t(rows[e] * kHidden), uint32_t(200 + e), 1.0f));
      alone.emplace_back(x.back().size(), NAN);
      batched.emplace_back(x.back().size(), NAN);
    }
    for (int e = 0; e < kExperts; ++e) {
      const model::GatedMlpMatrices w = expert.layout.views(slots + e * expert.layout.bytes);
      device.run_expert(w, x[size_t(e)].data(), rows[e], alone[size_t(e)].data());
      runs.push_back({w, x[size_t(e)].data(), rows[e], batched[size_t(e)].data()});
    }
    device.run_experts(runs);
    const model::GatedMlpMatrices host = expert.layout.views(expert.bytes.data());
    for (int e = 0; e < kExperts; ++e) {
      EXPECT_EQ(std::memcmp(alone[size_t(e)].data(), batched[size_t(e)].data(), alone[size_t(e)].size() * sizeof(float)), 0)
          << "gated " << gated << " expert " << e;
      EXPECT_LT(relative_error(batched[size_t(e)], cpu_expert(host, x[size_t(e)], rows[e])), 1e-5);
    }
  }
}

TEST_F(CudaDevice, StreamedQuantisedCopiesMatchTheCpu) {
  const HostExpert expert(/*gated=*/true);
  cuda::DeviceArena arena(0, 0);  // streamed copies need no slots
  CudaExpertDevice device(arena, expert.layout);
  const model::GatedMlpMatrices full = expert.layout.views(expert.bytes.data());
  for (const QuantFormat format : {QuantFormat{DType::kI8, 64}, QuantFormat{DType::kI4, 32}, QuantFormat{DType::kI4, 128}}) {
    model::GatedMlpMatrices q = full;
    std::vector<std::vector<uint8_t>> data(3);
    std::vector<std::vector<float>> scales(3);
    cpu::WeightMatrix* mats[3] = {&q.gate, &q.up, &q.down};
    for (int i = 0; i < 3; ++i) {
      cpu::WeightMatrix& w = *mats[i];
      std::vector<float> f32(size_t(w.rows * w.cols));
      for (int64_t r = 0; r < w.rows; ++r) cpu::row_to_f32(w, r, f32.data() + r * w.cols);
      data[size_t(i)].resize(cpu::quantized_data_bytes(format, w.rows, w.cols));
      scales[size_t(i)].resize(cpu::quantized_scale_count(format, w.rows, w.cols));
      cpu::quantize_rows(f32.data(), w.rows, w.cols, format, data[size_t(i)].data(), scales[size_t(i)].data());
      w = cpu::WeightMatrix{data[size_t(i)].data(), format.dtype, w.rows, w.cols, scales[size_t(i)].data(), format.group_size};
    }
    for (const int64_t m : {1, 8, 40}) {
      const std::vector<float> x = random_floats(size_t(m * kHidden), uint32_t(100 + m), 1.0f);
      const std::vector<float> want = cpu_expert(q, x, m);
      std::vector<float> got(want.size(), NAN);
      device.run_host_expert(q, x.data(), m, got.data());
      EXPECT_LT(relative_error(got, want), 1e-5) << dtype_name(format.dtype) << " g" << format.group_size << " m " << m;
    }
  }
}

// FP8 experts (the releases' 128 x 128 blocks, and 100 x 48 ones whose edge blocks are partial
// both ways) in a slot and streamed from the host, at row counts of the GEMV and the grouped
// GEMM: the CPU's FP8 kernels' results to 1e-5 (the same dequantised values, summed in another
// order), and a batch gives each expert its bits alone. Blocks that split a 16-byte load are refused.
TEST_F(CudaDevice, Fp8ExpertsMatchTheCpu) {
  for (const auto& [block_rows, block_cols] : {std::pair{128, 128}, std::pair{100, 48}}) {
    const HostExpert expert(block_rows, block_cols);
    ASSERT_EQ(expert.layout.format(), "fp8:" + std::to_string(block_rows) + "x" + std::to_string(block_cols));
    cuda::DeviceArena arena(0, expert.layout.bytes);
    CudaExpertDevice device(arena, expert.layout);
    std::byte* slot = device.allocate(expert.layout.bytes);
    {
      auto upload = device.begin_upload(slot);
      upload->write(0, expert.bytes.data(), expert.layout.bytes);
      upload->finish();
    }
    const model::GatedMlpMatrices host = expert.layout.views(expert.bytes.data());
    const model::GatedMlpMatrices on_device = expert.layout.views(slot);
    std::vector<std::vector<float>> xs, alone;
    std::vector<ExpertRun> runs;
    const std::vector<int64_t> counts = {1, 8, 13, 31, 32, 77, 600};
    for (const int64_t m : counts) {
      xs.push_back(random_floats(size_t(m * kHidden), uint32_t(300 + m), 1.0f));
      const std::vector<float> want = cpu_expert(host, xs.back(), m);
      std::vector<float> got(want.size(), NAN), streamed(want.size(), NAN);
      device.run_expert(on_device, xs.back().data(), m, got.data());
      device.run_host_expert(host, xs.back().data(), m, streamed.data());
      EXPECT_LT(relative_error(got, want), 1e-5) << block_rows << "x" << block_cols << " m " << m;
      EXPECT_EQ(std::memcmp(got.data(), streamed.data(), got.size() * sizeof(float)), 0) << "m " << m;
      alone.push_back(std::move(got));
    }
    std::vector<std::vector<float>> batched;
    for (size_t i = 0; i < counts.size(); ++i) batched.emplace_back(alone[i].size(), NAN);
    for (size_t i = 0; i < counts.size(); ++i) runs.push_back({on_device, xs[i].data(), counts[i], batched[i].data()});
    device.run_experts(runs);
    for (size_t i = 0; i < counts.size(); ++i)
      EXPECT_EQ(std::memcmp(alone[i].data(), batched[i].data(), alone[i].size() * sizeof(float)), 0) << "m " << counts[i];
  }
  const HostExpert split(128, 40);  // 40 columns: a block edge inside a 16-byte load
  cuda::DeviceArena arena(0, 0);
  try {
    CudaExpertDevice device(arena, split.layout);
    ADD_FAILURE() << "fp8 blocks of 40 columns were taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("128x40"), std::string::npos) << e.what();
  }
}

TEST_F(CudaDevice, RefusesADeviceThatIsNotThereExpertsInF32AndSlotsPastItsArena) {
  const HostExpert expert(true);
  EXPECT_THROW(cuda::DeviceArena(cuda::device_count(), 1024), Error);
  cuda::DeviceArena arena(0, 3 * expert.layout.bytes);
  ExpertLayout f32 = expert.layout;
  f32.up.dtype = DType::kF32;
  EXPECT_THROW(CudaExpertDevice(arena, f32), Error);
  CudaExpertDevice device(arena, expert.layout);
  device.allocate(2 * expert.layout.bytes);
  try {
    device.allocate(2 * expert.layout.bytes);
    ADD_FAILURE() << "an arena of three experts gave four";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("--gpu-mem"), std::string::npos) << e.what();
  }
}

// The arena's pieces are real device memory, disjoint, given back when dropped.
TEST_F(CudaDevice, AnArenaGivesDisjointPiecesAndTakesThemBack) {
  cuda::DeviceArena arena(0, 3 << 20);
  auto a = arena.allocate(1 << 20, "a"), b = arena.allocate(1 << 20, "b");
  EXPECT_FALSE(arena.try_allocate(2 << 20));
  ASSERT_EQ(cudaMemset(a.get(), 0x11, a.bytes()), cudaSuccess);
  ASSERT_EQ(cudaMemset(b.get(), 0x22, b.bytes()), cudaSuccess);
  std::vector<uint8_t> back(a.bytes());
  ASSERT_EQ(cudaMemcpy(back.data(), a.get(), back.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(std::count(back.begin(), back.end(), uint8_t(0x11)), std::ptrdiff_t(back.size()));
  b.reset();
  EXPECT_TRUE(arena.try_allocate(2 << 20));
  EXPECT_EQ(arena.used(), uint64_t(1) << 20);  // the temporary went back at once
}

}  // namespace
}  // namespace moe::offload
