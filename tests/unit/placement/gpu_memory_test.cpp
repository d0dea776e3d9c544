// The GPU budget's split for Mixtral-8x7B against figures worked out by hand from its config
// (hidden 4096, 32 layers, 8 KV heads of 128, vocabulary 32000, ~1.6 B dense parameters).
#include <gtest/gtest.h>

#include <filesystem>

#include "placement/cost/gpu_memory.h"
#include "runtime/core/error.h"

namespace moe::placement {
namespace {

const std::filesystem::path kRoot = MOE_SOURCE_DIR;

TEST(GpuMemory, Mixtral8x7bIn24GiB) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  const uint64_t expert = 3ull * 4096 * 14336 * 2, budget = 24ull << 30;
  const GpuMemorySplit s = split_gpu_memory(shape, budget, 4096, expert);
  EXPECT_EQ(s.kv, 2ull * 4 * 32 * 4096 * 8 * 128);  // f32 keys and values: exactly 1 GiB
  EXPECT_NEAR(double(s.dense), 2 * 1.605e9, 0.02e9);
  EXPECT_EQ(s.scratch, 4ull * 32000 * 4096 + (256ull << 20));  // the LM head widened, and activations
  EXPECT_EQ(s.dense + s.kv + s.scratch + s.experts, budget);
  EXPECT_EQ(s.arena(0), budget - s.scratch + 512);  // two allocations' rounding
  EXPECT_EQ(s.arena(1), s.experts + 512);           // other GPUs hold experts only
  EXPECT_EQ(s.experts / expert, 58u);  // of the model's 256
  // 200 GiB holds the whole model: the expert cache takes every expert and no more.
  EXPECT_EQ(split_gpu_memory(shape, 200ull << 30, 4096, expert).experts, 256 * expert);
}

// An FP8 release keeps its dense projections in FP8 on the GPU (CudaLinear), so the dense part
// is counted so: about half of bf16's for DeepSeek-V3, the rest going to experts.
TEST(GpuMemory, Fp8ReleasesCountTheirDenseWeightsInFp8) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "deepseek-v3.json").string());
  const uint64_t expert = uint64_t(shape.expert_bytes(ExpertFormat::kFp8)), budget = 80ull << 30;
  const GpuMemorySplit s = split_gpu_memory(shape, budget, 4096, expert);
  EXPECT_EQ(s.dense, uint64_t(shape.dense_bytes(ExpertFormat::kFp8)));
  EXPECT_LT(s.dense, uint64_t(shape.dense_bytes(ExpertFormat::kBF16)) * 6 / 10);
  EXPECT_EQ(s.dense + s.kv + s.scratch + s.experts, budget);
}

TEST(GpuMemory, ABudgetWithoutRoomForAnExpertSaysWhatTakesIt) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  try {
    split_gpu_memory(shape, 4ull << 30, 4096, 3ull * 4096 * 14336 * 2);
    ADD_FAILURE() << "4 GiB cannot hold Mixtral's dense weights, KV cache and an expert";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("KV cache of 4096 tokens"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe::placement
