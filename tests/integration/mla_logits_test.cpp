// DeepSeek-V2 and V3 (multi-head latent attention, grouped routing) against Hugging Face
// transformers: the tiny random checkpoints of tests/reference/make_hf_deepseek_v2_fixtures.py
// (bf16 and f32 weights, with and without q_lora_rank, greedy and group-limited routing, YaRN with
// mscale), their logits and greedy continuations; the compressed cache's size, prefill =
// step-by-step decode, batched decode through the scheduler's shared pool, offloaded experts on
// CPU virtual devices and a packed expert store (the same bits).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

#include "offload/executor/expert_backing.h"
#include "offload/executor/offloaded_experts.h"
#include "offload/executor/predictor.h"
#include "offload/store/model_layout.h"
#include "offload/store/store_writer.h"
#include "runtime/model/model_loader.h"
#include "tests/integration/hf_fixture.h"
#include "tests/integration/offload_fixture.h"

namespace moe {
namespace {

using testing::all_logits;
using testing::expected_ints;
using testing::kFixtures;
using testing::relative_error;

class MlaFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(MlaFixture, LogitsAndGreedyTokensMatchTransformers) {
  const auto dir = kFixtures / GetParam();
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt"), generated = expected_ints(dir, "generated");
  model::LoadedModel m = model::load_model(dir);
  ASSERT_TRUE(m.config.is_mla());
  const std::vector<float> logits = all_logits(*m.transformer, prompt);
  const Tensor reference = testing::expected_logits(dir);
  const double error = relative_error(logits, reference);
  double max_diff = 0;
  for (size_t i = 0; i < logits.size() && int64_t(i) < reference.numel(); ++i)
    max_diff = std::max(max_diff, double(std::fabs(logits[i] - reference.data<float>()[i])));
  RecordProperty("relative_error", std::to_string(error));
  std::printf("%s: max |logit - transformers| = %.3g, relative to max |transformers| %.3g\n", GetParam().c_str(), max_diff,
              error);
  EXPECT_LT(error, 1e-5);

  model::GenerationOptions options;
  options.max_new_tokens = int(generated.size());
  EXPECT_EQ(model::generate(*m.transformer, prompt, options).tokens, generated);
}

INSTANTIATE_TEST_SUITE_P(DeepSeek, MlaFixture,
                         ::testing::Values("deepseek_v2-lite", "deepseek_v2-group", "deepseek_v3", "deepseek_v3-plain"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) if (c == '-') c = '_';
                           return name;
                         });

// The cache holds [latent, k_pe] per token and layer, once (no separate values): for the
// fixture's 32 + 8 floats that is 3 layers x 40 x 4 bytes, where full K/V would take
// 3 x 4 heads x (24 + 12) x 4.
TEST(Mla, CacheKeepsTheLatentAndTheRopeKeyOnly) {
  model::LoadedModel m = model::load_model(kFixtures / "deepseek_v3");
  const loading::ModelConfig& c = m.config;
  ASSERT_EQ(c.mla.kv_lora_rank + c.mla.qk_rope_head_dim, 40);
  EXPECT_EQ(c.num_kv_heads, 1);
  EXPECT_EQ(c.head_dim, 40);
  EXPECT_FALSE(c.kv_values_stored());
  const auto pool = m.transformer->make_kv_pool(16, 4);
  EXPECT_FALSE(pool->with_values());
  EXPECT_EQ(pool->block_bytes(), uint64_t(3 * 40 * 16 * 4));
  EXPECT_EQ(model::KvBlockPool::token_bytes(c.num_layers, pool->row_size(), false), uint64_t(3 * 40 * 4));
  model::KvCache cache = m.transformer->make_cache(8);
  cache.reserve_more(8);
  EXPECT_EQ(cache.nbytes(), uint64_t(3 * 40 * 4 * 8));
  EXPECT_EQ(cache.keys(0), cache.values(0));
  EXPECT_EQ(cache.blocks(0).keys, cache.blocks(0).values);
}

// Prefill equals step-by-step decode, bit for bit: every step of MLA is per token.
TEST(Mla, PrefillEqualsStepByStepDecode) {
  for (const char* name : {"deepseek_v2-group", "deepseek_v3"}) {
    model::LoadedModel m = model::load_model(kFixtures / name);
    const std::vector<int32_t> prompt = expected_ints(kFixtures / name, "prompt");
    model::KvCache all = m.transformer->make_cache(int64_t(prompt.size()));
    const std::vector<float> together = m.transformer->forward(prompt, all, model::LogitsWanted::kAll);
    model::KvCache one = m.transformer->make_cache(int64_t(prompt.size()));
    const int64_t vocab = m.config.vocab_size;
    for (size_t i = 0; i < prompt.size(); ++i) {
      const std::vector<float> step = m.transformer->forward(std::span(&prompt[i], 1), one);
      ASSERT_EQ(std::memcmp(step.data(), together.data() + int64_t(i) * vocab, sizeof(float) * size_t(vocab)), 0)
          << name << " position " << i;
    }
    for (int l = 0; l < m.config.num_layers; ++l)
      EXPECT_EQ(std::memcmp(all.keys(l), one.keys(l), sizeof(float) * size_t(prompt.size() * all.row_size())), 0) << name;
  }
}

// Batched decode through the scheduler over a shared keys-only pool: each sequence's tokens are
// those it gets alone, the fixture's prompt among them giving transformers' continuation.
TEST(Mla, BatchedDecodeThroughTheSchedulerMatchesAlone) {
  const auto dir = kFixtures / "deepseek_v3";
  model::LoadedModel m = model::load_model(dir);
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt"), generated = expected_ints(dir, "generated");
  std::vector<std::vector<int32_t>> prompts = {prompt, {5, 9, 200}, {77}, {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2}};
  model::GenerationOptions options;
  options.max_new_tokens = int(generated.size());
  // Few blocks of 4 tokens: the sequences share them, and the youngest are preempted.
  EXPECT_EQ(testing::expect_batched_decode_matches_alone(*m.transformer, prompts, options, 4, 10)[0], generated);
}

using testing::same_bits;

// The offloading executor (what --gpu-mem and --devices run) on CPU virtual devices, down to one
// expert slot, and a model packed into an expert store (moe pack, without the MTP layer's
// tensors) give the resident run's bits.
TEST(Mla, OffloadedAndPackedExpertsGiveTheSameBits) {
  for (const char* name : {"deepseek_v2-group", "deepseek_v3"}) {
    const auto dir = kFixtures / name;
    const std::vector<int32_t> prompt = expected_ints(dir, "prompt");
    model::LoadedModel m = model::load_model(dir);
    model::Transformer& t = *m.transformer;
    const std::vector<float> reference = all_logits(t, prompt);
    const uint64_t expert = offload::ExpertBacking(t.weights()).layout().bytes;
    for (const auto& [devices, slots, predictor] : {std::tuple{1, 1, "none"}, {2, 3, "next-layer"}, {3, 7, "none"}}) {
      offload::OffloadOptions o;
      o.devices = devices;
      o.device_bytes = uint64_t(slots) * expert;
      o.host_bytes = 2 * expert;
      offload::OffloadedExperts runner(t, o, offload::make_predictor(predictor, t, nullptr));
      t.set_expert_runner(&runner);
      const std::vector<float> got = all_logits(t, prompt);
      t.set_expert_runner(nullptr);
      EXPECT_TRUE(same_bits(got, reference)) << name << ": " << devices << " devices, " << slots << " slots";
      EXPECT_GT(runner.stats().offloaded_uses, 0u);
    }
    const auto store = std::filesystem::temp_directory_path() / (std::string("moe_mla_") + name + ".moe");
    const offload::PackSummary packed_summary =
        offload::pack_store(dir, store, offload::store_layout_for(m.config), offload::PackOptions{});
    // The V3 fixture carries three tensors of an MTP layer after the last (as the release does):
    // never read, so left out of the store.
    const uint64_t mtp_bytes = 2 * (64 + 64 * 128 + 16 * 64);
    EXPECT_EQ(packed_summary.unused_bytes, std::string_view(name) == "deepseek_v3" ? mtp_bytes : 0u) << name;
    model::LoadedModel packed = model::load_model(store);
    EXPECT_TRUE(same_bits(all_logits(*packed.transformer, prompt), reference)) << name;
    std::filesystem::remove(store);
  }
}

}  // namespace
}  // namespace moe
