// The engine against Hugging Face transformers: logits of tiny random checkpoints of every
// family (tests/fixtures, written by tests/reference/make_hf_fixtures.py; MoE++ by
// make_moe_plus_plus_fixture.py from a reference checked against the released layer) and the greedy
// continuation with the KV cache.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "runtime/loading/safetensors.h"
#include "runtime/model/generator.h"
#include "runtime/model/model_loader.h"

namespace moe {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";

class HfFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(HfFixture, LogitsAndGreedyTokensMatchTransformers) {
  const auto dir = kFixtures / GetParam();
  std::ifstream in(dir / "expected.json");
  const auto expected = nlohmann::json::parse(in);
  const std::vector<int32_t> prompt = expected.at("prompt").get<std::vector<int32_t>>();
  const std::vector<int32_t> generated = expected.at("generated").get<std::vector<int32_t>>();
  const Tensor reference = loading::SafetensorsFile::open(dir / "expected.safetensors").tensor("logits");

  model::LoadedModel m = model::load_model(dir);
  model::KvCache cache = m.transformer->make_cache(int64_t(prompt.size()));
  const std::vector<float> logits = m.transformer->forward(prompt, cache, model::LogitsWanted::kAll);
  ASSERT_EQ(int64_t(logits.size()), reference.numel());

  const float* ref = reference.data<float>();
  float max_ref = 0, max_err = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(ref[i]));
    max_err = std::max(max_err, std::fabs(logits[i] - ref[i]));
  }
  EXPECT_LT(max_err / max_ref, 1e-5) << "max |error| " << max_err << " against max |logit| " << max_ref;

  model::GenerationOptions options;
  options.max_new_tokens = int(generated.size());
  EXPECT_EQ(model::generate(*m.transformer, prompt, options).tokens, generated);
}

INSTANTIATE_TEST_SUITE_P(Families, HfFixture,
                         ::testing::Values("mixtral", "mixtral-sharded", "qwen2_moe", "qwen3_moe", "qwen3_moe-yarn",
                                           "olmoe", "deepseek", "moe_plus_plus"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace moe
