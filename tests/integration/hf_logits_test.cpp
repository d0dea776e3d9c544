// The engine against Hugging Face transformers: logits of tiny random checkpoints of every
// family (tests/fixtures, written by tests/reference/make_hf_fixtures.py; MoE++, DS-MoE and BAM
// by their make_*_fixture(s).py from PyTorch references) and the greedy continuation with the
// KV cache; perplexity and DS-MoE's routing modes against the same files.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "runtime/core/error.h"
#include "runtime/core/read_file.h"
#include "runtime/loading/safetensors.h"
#include "runtime/model/generator.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/perplexity.h"
#include "tests/integration/hf_fixture.h"

namespace moe {
namespace {

using testing::all_logits;
using testing::expected_json;
using testing::expected_logits;
using testing::kFixtures;
using testing::relative_error;

std::vector<int32_t> prompt_of(const std::filesystem::path& dir) { return testing::expected_ints(dir, "prompt"); }

class HfFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(HfFixture, LogitsAndGreedyTokensMatchTransformers) {
  const auto dir = kFixtures / GetParam();
  const std::vector<int32_t> prompt = prompt_of(dir);
  const std::vector<int32_t> generated = expected_json(dir).at("generated").get<std::vector<int32_t>>();
  model::LoadedModel m = model::load_model(dir);
  EXPECT_LT(relative_error(all_logits(*m.transformer, prompt), expected_logits(dir)), 1e-5);

  model::GenerationOptions options;
  options.max_new_tokens = int(generated.size());
  EXPECT_EQ(model::generate(*m.transformer, prompt, options).tokens, generated);
}

INSTANTIATE_TEST_SUITE_P(Families, HfFixture,
                         ::testing::Values("mixtral", "mixtral-sharded", "qwen2_moe", "qwen3_moe", "qwen3_moe-yarn",
                                           "olmoe", "deepseek", "moe_plus_plus", "ds_moe", "ds_moe-att2", "bam-expert-kv",
                                           "bam-shared-kv", "qwen3_moe-attention-bias", "olmoe-attention-bias",
                                           "qwen2_moe-no-qkv-bias", "qwen2_moe-sliding", "mixtral-gelu", "glm4_moe", "glm4_moe-plain"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) if (c == '-') c = '_';
                           return name;
                         });

// Perplexity by the engine against the negative log-likelihood computed here from the logits
// transformers wrote for the fixture's prompt.
TEST(Perplexity, MatchesTheTransformersLogits) {
  const auto dir = kFixtures / "mixtral";
  const std::vector<int32_t> prompt = prompt_of(dir);
  const Tensor reference = expected_logits(dir);
  const int64_t vocab = reference.dim(1);
  double nll = 0;
  for (size_t t = 0; t + 1 < prompt.size(); ++t) {
    const float* row = reference.data<float>() + int64_t(t) * vocab;
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]));
    nll += std::log(sum) - row[prompt[t + 1]];
  }
  model::LoadedModel m = model::load_model(dir);
  const model::Perplexity p = model::evaluate_perplexity(*m.transformer, prompt, int(prompt.size()));
  EXPECT_EQ(p.predicted, int64_t(prompt.size()) - 1);
  EXPECT_NEAR(p.nll, nll, 1e-4 * nll);
  // Two windows score two tokens fewer (each window's first token has no prediction in it).
  const model::Perplexity halves = model::evaluate_perplexity(*m.transformer, prompt, int(prompt.size() + 1) / 2);
  EXPECT_EQ(halves.windows, 2);
  EXPECT_EQ(halves.predicted, int64_t(prompt.size()) - 2);
  EXPECT_THROW(model::evaluate_perplexity(*m.transformer, std::span(prompt).first(1), 8), Error);
}

// DS-MoE's routing modes against its reference: dense and threshold logits of the same prompt.
TEST(DsMoe, RoutingModesMatchTheReference) {
  const auto dir = kFixtures / "ds_moe";
  const std::vector<int32_t> prompt = prompt_of(dir);
  model::LoadedModel m = model::load_model(dir);
  for (const auto& [mode, name] : {std::pair<std::string, std::string>{"dense", "logits_dense"}, {"threshold:0.8", "logits_threshold"}}) {
    m.transformer->set_routing_mode(model::parse_routing_mode(mode));
    EXPECT_LT(relative_error(all_logits(*m.transformer, prompt), expected_logits(dir, name)), 1e-5) << mode;
  }
}

}  // namespace
}  // namespace moe
