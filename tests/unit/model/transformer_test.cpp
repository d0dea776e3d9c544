// The forward pass's own invariants, on synthetic weights of every family: prefill equals
// step-by-step decode bit for bit, and the expert schedule never changes a bit.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "kernels/cpu/attention.h"
#include "runtime/core/error.h"
#include "runtime/model/expert_groups.h"
#include "runtime/model/generator.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/synthetic_weights.h"
#include "tests/unit/model/tiny_configs.h"

namespace moe::model {
namespace {

LoadedModel tiny_model(const std::string& type, uint64_t seed = 7) {
  const auto config = loading::parse_model_config(moe::testing::tiny_config(type), type);
  return load_model(config, std::make_shared<SyntheticWeights>(config, seed));
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

const std::vector<int32_t> kPrompt = {3, 17, 42, 5, 96, 0, 11, 64};

class EveryFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFamily, LogitsAreFinite) {
  LoadedModel m = tiny_model(GetParam());
  KvCache cache = m.transformer->make_cache(16);
  const auto logits = m.transformer->forward(kPrompt, cache, LogitsWanted::kAll);
  ASSERT_EQ(logits.size(), kPrompt.size() * 97);
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(cache.length(), int64_t(kPrompt.size()));
}

TEST_P(EveryFamily, PrefillEqualsDecodeBitForBit) {
  LoadedModel m = tiny_model(GetParam());
  KvCache batch = m.transformer->make_cache(16);
  const auto all = m.transformer->forward(kPrompt, batch, LogitsWanted::kAll);
  KvCache steps = m.transformer->make_cache(16);
  for (size_t i = 0; i < kPrompt.size(); ++i) {
    const auto one = m.transformer->forward(std::span(&kPrompt[i], 1), steps);
    const std::vector<float> expected(all.begin() + int64_t(i * 97), all.begin() + int64_t((i + 1) * 97));
    ASSERT_TRUE(same_bits(one, expected)) << "position " << i;
  }
}

// A batched step over sequences at different positions, some mid-prefill, gives each the logits
// it gets alone, bit for bit, in any order of the batch.
TEST_P(EveryFamily, BatchedStepEqualsEachSequenceAlone) {
  LoadedModel m = tiny_model(GetParam());
  Transformer& t = *m.transformer;
  const std::vector<std::vector<int32_t>> prompts = {{3, 17, 42, 5, 96}, {7}, {11, 64, 0, 2, 9, 31, 40, 8, 1}};
  const std::vector<size_t> already = {2, 0, 5};  // tokens each cache holds before the step
  std::vector<std::vector<float>> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    KvCache c = t.make_cache(16);
    const std::vector<float> all = t.forward(prompts[i], c, LogitsWanted::kAll);
    alone.emplace_back(all.begin() + int64_t(already[i] * 97), all.end());
  }
  auto pool = t.make_kv_pool(3, 20);
  for (const bool reversed : {false, true}) {
    std::vector<KvCache> caches;
    for (size_t i = 0; i < prompts.size(); ++i) {
      caches.emplace_back(pool, 16);
      if (already[i] > 0) t.forward(std::span(prompts[i]).first(already[i]), caches.back(), LogitsWanted::kNone);
    }
    std::vector<SequenceStep> batch;
    std::vector<size_t> order = {0, 1, 2};
    if (reversed) std::reverse(order.begin(), order.end());
    for (const size_t i : order) batch.push_back({std::span(prompts[i]).subspan(already[i]), &caches[i], LogitsWanted::kAll});
    const std::vector<float> logits = t.forward(batch);
    size_t offset = 0;
    for (const size_t i : order) {
      const std::vector<float> got(logits.begin() + int64_t(offset), logits.begin() + int64_t(offset + alone[i].size()));
      EXPECT_TRUE(same_bits(got, alone[i])) << "sequence " << i << (reversed ? " (reversed)" : "");
      offset += alone[i].size();
      EXPECT_EQ(caches[i].length(), int64_t(prompts[i].size()));
    }
    EXPECT_EQ(offset, logits.size());
  }
  EXPECT_EQ(pool->free_blocks(), 20);
  KvCache shared(pool, 16);
  const std::vector<SequenceStep> twice = {{prompts[0], &shared, LogitsWanted::kLast}, {prompts[1], &shared, LogitsWanted::kLast}};
  EXPECT_THROW(t.forward(twice), Error);
}

// Runs experts one token at a time, in descending expert order: a different schedule.
class ReversedExperts final : public ExpertRunner {
 public:
  explicit ReversedExperts(const ModelWeights& w) : weights_(w) {}
  void run(int layer, const float* x, int64_t hidden, const RoutingDecision& routing, float* out) override {
    auto groups = group_by_expert(routing);
    std::reverse(groups.begin(), groups.end());
    std::vector<float> scratch, result(static_cast<size_t>(hidden));
    for (const ExpertGroup& g : groups) {
      const GatedMlpMatrices mlp = matrices_of(weights_.layers[size_t(layer)].moe.experts[size_t(g.expert)]);
      for (size_t i = 0; i < g.tokens.size(); ++i) {
        run_gated_mlp(mlp, x + int64_t{g.tokens[i]} * hidden, 1, result.data(), scratch);
        std::copy(result.begin(), result.end(), out + int64_t{g.assignments[i]} * hidden);
      }
    }
    ++calls;
  }
  int calls = 0;

 private:
  const ModelWeights& weights_;
};

TEST_P(EveryFamily, ExpertScheduleDoesNotChangeABit) {
  LoadedModel m = tiny_model(GetParam());
  KvCache a = m.transformer->make_cache(16);
  const auto reference = m.transformer->forward(kPrompt, a, LogitsWanted::kAll);
  ReversedExperts reversed(m.transformer->weights());
  m.transformer->set_expert_runner(&reversed);
  KvCache b = m.transformer->make_cache(16);
  const auto other = m.transformer->forward(kPrompt, b, LogitsWanted::kAll);
  EXPECT_GT(reversed.calls, 0);
  EXPECT_TRUE(same_bits(reference, other));
}

TEST_P(EveryFamily, RoutingHookSeesEverySparseLayer) {
  LoadedModel m = tiny_model(GetParam());
  std::vector<int> layers;
  m.transformer->set_routing_hook([&](int layer, std::span<const int64_t> positions, RoutingDecision& d) {
    layers.push_back(layer);
    EXPECT_EQ(int64_t(positions.size()), d.num_tokens());
    for (int64_t t = 0; t < d.num_tokens(); ++t) {
      auto e = d.experts_of(t);
      EXPECT_TRUE(std::is_sorted(e.begin(), e.end()));
      EXPECT_EQ(int(e.size()), m.config.num_experts_per_tok);
    }
  });
  KvCache cache = m.transformer->make_cache(16);
  m.transformer->forward(kPrompt, cache);
  EXPECT_EQ(int(layers.size()), m.config.num_sparse_layers());
}

// The CPU kernels behind the linear-backend seam, counting: the same bits, every projection seen.
class CountingLinear final : public LinearBackend {
 public:
  void matmul(const float* x, int64_t m, const cpu::WeightMatrix& w, float* y, const float* bias) override {
    cpu::matmul(x, m, w, y, bias);
    ++calls;
    biased += bias != nullptr;
  }
  int calls = 0, biased = 0;
};

// Whether the prompt's logits keep their bits with these backends set (null: the CPU's own).
bool same_bits_with(Transformer& t, LinearBackend* linear, AttentionBackend* attention) {
  KvCache a = t.make_cache(16);
  const auto reference = t.forward(kPrompt, a, LogitsWanted::kAll);
  t.set_linear_backend(linear);
  t.set_attention_backend(attention);
  KvCache b = t.make_cache(16);
  const auto other = t.forward(kPrompt, b, LogitsWanted::kAll);
  t.set_linear_backend(nullptr);
  t.set_attention_backend(nullptr);
  return same_bits(reference, other);
}

TEST_P(EveryFamily, DenseProductsGoThroughTheLinearBackend) {
  LoadedModel m = tiny_model(GetParam());
  CountingLinear counting;
  EXPECT_TRUE(same_bits_with(*m.transformer, &counting, nullptr));
  // q, k, v and o per layer and the LM head at least; dense first layers and shared experts more.
  EXPECT_GE(counting.calls, 4 * m.config.num_layers + 1);
  if (GetParam() == "qwen2_moe") {
    EXPECT_GT(counting.biased, 0);  // its q, k, v biases travel along
  }
}

// The CPU kernel behind the attention seam: the same bits, every layer's step seen.
class CountingAttention final : public AttentionBackend {
 public:
  void attend(KvCache& cache, const AttentionStep& s, float* out) override {
    cpu::attention(s.q, cache.blocks(s.layer), s.n, s.start, s.n_heads, s.n_kv_heads, s.head_dim, s.scale, out,
                   s.sliding_window, s.head_mask);
    ++steps;
  }
  int steps = 0;
};

TEST_P(EveryFamily, AttentionGoesThroughItsBackend) {
  LoadedModel m = tiny_model(GetParam());
  CountingAttention counting;
  EXPECT_TRUE(same_bits_with(*m.transformer, nullptr, &counting));
  EXPECT_EQ(counting.steps, m.config.num_layers);
}

// DS-MoE's head-masked attention and a sliding window go through the backend too, same bits.
TEST(AttentionBackend, TakesHeadMasksAndSlidingWindows) {
  const std::filesystem::path fixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";
  std::vector<LoadedModel> models;
  models.push_back(load_model(fixtures / "ds_moe"));
  models.push_back(load_model(fixtures / "ds_moe-att2"));
  auto windowed = loading::parse_model_config(moe::testing::tiny_config("mixtral"), "mixtral");
  windowed.sliding_window = 3;  // shorter than the prompt
  models.push_back(load_model(windowed, std::make_shared<SyntheticWeights>(windowed, 7)));
  for (LoadedModel& m : models) {
    CountingAttention counting;
    EXPECT_TRUE(same_bits_with(*m.transformer, nullptr, &counting)) << m.config.model_type;
    EXPECT_EQ(counting.steps, m.config.num_layers);
  }
}

// BAM's attention experts' products go through the linear backend too, same bits.
TEST(LinearBackend, TakesBamsAttentionExperts) {
  const std::filesystem::path fixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";
  for (const char* fixture : {"bam-expert-kv", "bam-shared-kv"}) {
    LoadedModel m = load_model(fixtures / fixture);
    CountingLinear counting;
    EXPECT_TRUE(same_bits_with(*m.transformer, &counting, nullptr)) << fixture;
    EXPECT_GE(counting.calls, m.config.num_layers * 2 * m.config.bam.attention_experts) << fixture;  // q and o at least
  }
}

INSTANTIATE_TEST_SUITE_P(Families, EveryFamily,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek", "deepseek_v2", "deepseek_v3",
                                           "glm4_moe"));

TEST(Transformer, ReplacedRoutingChangesTheResult) {
  LoadedModel m = tiny_model("mixtral");
  KvCache a = m.transformer->make_cache(16);
  const auto reference = m.transformer->forward(kPrompt, a);
  m.transformer->set_routing_hook([](int, std::span<const int64_t>, RoutingDecision& d) {
    RoutingDecision forced;
    for (int64_t t = 0; t < d.num_tokens(); ++t) forced.add_token(std::vector<int32_t>{4, 5}, std::vector<float>{0.5f, 0.5f});
    d = forced;
  });
  KvCache b = m.transformer->make_cache(16);
  EXPECT_FALSE(same_bits(reference, m.transformer->forward(kPrompt, b)));
}

TEST(Transformer, RejectsTokensOutsideTheVocabularyAndFullCaches) {
  LoadedModel m = tiny_model("mixtral");
  KvCache cache = m.transformer->make_cache(4);
  const std::vector<int32_t> bad = {1, 97};
  EXPECT_THROW(m.transformer->forward(bad, cache), Error);
  EXPECT_THROW(m.transformer->forward(kPrompt, cache), Error);  // 8 tokens, room for 4
}

TEST(Generator, GreedyIsReproducibleAndStopsAtStopTokens) {
  LoadedModel m = tiny_model("qwen3_moe");
  GenerationOptions options;
  options.max_new_tokens = 6;
  const Generation first = generate(*m.transformer, kPrompt, options);
  const Generation second = generate(*m.transformer, kPrompt, options);
  ASSERT_EQ(first.tokens.size(), 6u);
  EXPECT_EQ(first.tokens, second.tokens);
  EXPECT_EQ(first.stop_reason, "length");
  EXPECT_EQ(first.stats.prompt_tokens, int64_t(kPrompt.size()));

  options.stop_tokens = {first.tokens[2]};
  const Generation stopped = generate(*m.transformer, kPrompt, options);
  EXPECT_EQ(stopped.stop_reason, "stop_token");
  EXPECT_LE(stopped.tokens.size(), 3u);
  EXPECT_EQ(stopped.tokens.back(), first.tokens[2]);
}

TEST(Generator, SeededSamplingIsReproducible) {
  LoadedModel m = tiny_model("olmoe");
  GenerationOptions options;
  options.max_new_tokens = 8;
  options.sampling.temperature = 1.0;
  options.sampling.top_p = 0.9;
  options.sampling.seed = 1234;
  EXPECT_EQ(generate(*m.transformer, kPrompt, options).tokens, generate(*m.transformer, kPrompt, options).tokens);
}

TEST(SyntheticWeights, SameSeedSameBitsOtherSeedOtherBits) {
  const auto config = loading::parse_model_config(moe::testing::tiny_config("mixtral"), "mixtral");
  const SyntheticWeights a(config, 1), b(config, 1), c(config, 2);
  const Tensor x = a.tensor("model.layers.0.self_attn.q_proj.weight", {32, 32});
  const Tensor y = b.tensor("model.layers.0.self_attn.q_proj.weight", {32, 32});
  const Tensor z = c.tensor("model.layers.0.self_attn.q_proj.weight", {32, 32});
  EXPECT_EQ(std::memcmp(x.raw(), y.raw(), x.nbytes()), 0);
  EXPECT_NE(std::memcmp(x.raw(), z.raw(), x.nbytes()), 0);
}

TEST(SyntheticWeights, SharedExpertBytesShareOneBufferPerKind) {
  const auto config = loading::parse_model_config(moe::testing::tiny_config("mixtral"), "mixtral");
  const SyntheticWeights shared(config, 1, /*shared_expert_bytes=*/true);
  const auto get = [&](int layer, int expert, const char* w, const Shape& shape) {
    return shared.tensor(fmt::format("model.layers.{}.block_sparse_moe.experts.{}.{}.weight", layer, expert, w), shape);
  };
  const Tensor w1 = get(0, 0, "w1", {64, 32}), w1_other = get(3, 5, "w1", {64, 32});
  const Tensor w3 = get(0, 0, "w3", {64, 32}), w2 = get(1, 2, "w2", {32, 64}), w2_again = get(0, 7, "w2", {32, 64});
  EXPECT_EQ(w1.raw(), w1_other.raw());  // one buffer for every layer and expert
  EXPECT_EQ(w2.raw(), w2_again.raw());
  EXPECT_NE(w1.raw(), w3.raw());        // but one per tensor kind
  EXPECT_NE(std::memcmp(w1.raw(), w3.raw(), w1.nbytes()), 0);
  // Everything else is generated per name as before.
  const Tensor q0 = shared.tensor("model.layers.0.self_attn.q_proj.weight", {32, 32});
  const Tensor q1 = shared.tensor("model.layers.1.self_attn.q_proj.weight", {32, 32});
  EXPECT_NE(std::memcmp(q0.raw(), q1.raw(), q0.nbytes()), 0);
  EXPECT_THROW(get(2, 1, "w1", {32, 32}), Error);  // a kind of two shapes is a bug, said so
}

// A device mirror keys on the generation: a clear, a copy or a new cache must each be new.
TEST(KvCache, GenerationChangesOnClearAndCopy) {
  KvCache a(2, 2, 8, 16);
  const uint64_t first = a.generation();
  a.advance(3);
  EXPECT_EQ(a.generation(), first);  // appending keeps the lineage
  const KvCache copy = a;
  EXPECT_NE(copy.generation(), first);
  EXPECT_EQ(copy.length(), 3);
  a.clear();
  EXPECT_NE(a.generation(), first);
  EXPECT_NE(a.generation(), copy.generation());
  EXPECT_NE(KvCache(2, 2, 8, 16).generation(), a.generation());
}

}  // namespace
}  // namespace moe::model
