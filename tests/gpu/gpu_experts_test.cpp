// The GPU expert runner against the CPU: logits of the transformers fixtures (SwiGLU experts),
// the DS-MoE fixture (GeLU experts with bias) and the trained default model, with every routed
// expert computed on the device. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "kernels/cuda/device.h"
#include "offload/gpu/device_experts.h"
#include "runtime/model/model_loader.h"

namespace moe::offload {
namespace {

const std::filesystem::path kRoot(MOE_SOURCE_DIR);

std::vector<float> logits(model::Transformer& t) {
  const std::vector<int32_t> prompt = {1, 17, 42, 7, 99, 3, 250, 11, 64};
  model::KvCache cache = t.make_cache(int64_t(prompt.size()) + 1);
  std::vector<float> all = t.forward(prompt, cache, model::LogitsWanted::kAll);
  const std::vector<float> next = t.forward(std::vector<int32_t>{5}, cache, model::LogitsWanted::kAll);  // decode
  all.insert(all.end(), next.begin(), next.end());
  return all;
}

TEST(GpuExperts, MatchTheCpuOnEveryExpertShape) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device is present: GPU tests skipped";
  for (const auto& dir : {kRoot / "tests" / "fixtures" / "mixtral", kRoot / "tests" / "fixtures" / "qwen2_moe",
                          kRoot / "tests" / "fixtures" / "ds_moe", kRoot / "models" / "ds-moe-tiny"}) {
    model::LoadedModel m = model::load_model(dir);
    const std::vector<float> cpu = logits(*m.transformer);
    DeviceExperts gpu(m.transformer->weights());
    m.transformer->set_expert_runner(&gpu);
    const std::vector<float> got = logits(*m.transformer);
    m.transformer->set_expert_runner(nullptr);
    ASSERT_EQ(got.size(), cpu.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < cpu.size(); ++i) num += std::pow(got[i] - cpu[i], 2), den += std::pow(cpu[i], 2);
    EXPECT_LT(std::sqrt(num / den), 1e-5) << dir;
  }
}

}  // namespace
}  // namespace moe::offload
