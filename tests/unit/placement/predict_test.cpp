// Routing predictors on synthetic routing with known structure: each must beat a uniform guess
// where the structure it models is there, learning from one trace and judged on another; the
// recorded gate guesses survive the trace file; the simulator replays them and never trains
// on the routing it replays.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <random>

#include "placement/predict/predict_eval.h"
#include "placement/predict/routing_predictor.h"
#include "placement/sim/simulator.h"
#include "placement/trace/trace_io.h"
#include "runtime/core/error.h"
#include "tests/unit/placement/tiny_shape.h"

namespace moe::placement {
namespace {

constexpr int kLayers = 8, kExperts = 16, kTopK = 2;

// Two distinct experts: `first`, and another drawn from `rng` unless given.
std::vector<int32_t> pair_of(int32_t first, std::mt19937& rng, int32_t second = -1) {
  if (second < 0 || second == first) {
    do second = int32_t(rng() % kExperts);
    while (second == first);
  }
  return {first, second};
}

// Each layer's first expert follows from the previous layer's first expert through a fixed
// permutation (probability `p`, else uniform); the second is noise. Marginals are uniform, so
// popularity cannot help; transitions can.
Trace layered_trace(uint32_t seed, int sequences, int tokens, double p) {
  std::mt19937 rng(seed);
  std::mt19937 structure(7);  // the same permutations in every trace
  std::vector<std::vector<int32_t>> next(kLayers, std::vector<int32_t>(kExperts));
  for (auto& perm : next) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), structure);
  }
  Trace t;
  t.model = {"layered", kLayers, kExperts, kTopK};
  std::uniform_real_distribution<double> u(0, 1);
  for (int s = 0; s < sequences; ++s)
    for (int i = 0; i < tokens; ++i) {
      TokenRecord r{s, i, {}};
      int32_t first = int32_t(rng() % kExperts);
      for (int l = 0; l < kLayers; ++l) {
        if (l > 0) first = u(rng) < p ? next[size_t(l)][size_t(first)] : int32_t(rng() % kExperts);
        r.layers.push_back({l, pair_of(first, rng), {}});
      }
      t.tokens.push_back(std::move(r));
    }
  return t;
}

// Each sequence has its own two favourite experts per layer, used with probability `p` by
// every token (else uniform); layers are independent. Only a sequence's own history helps.
Trace sequence_trace(uint32_t seed, int sequences, int tokens, double p) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  Trace t;
  t.model = {"sequential", kLayers, kExperts, kTopK};
  for (int s = 0; s < sequences; ++s) {
    std::vector<std::vector<int32_t>> favourite;
    for (int l = 0; l < kLayers; ++l) favourite.push_back(pair_of(int32_t(rng() % kExperts), rng));
    for (int i = 0; i < tokens; ++i) {
      TokenRecord r{s, i, {}};
      for (int l = 0; l < kLayers; ++l)
        r.layers.push_back({l, u(rng) < p ? favourite[size_t(l)] : pair_of(int32_t(rng() % kExperts), rng), {}});
      t.tokens.push_back(std::move(r));
    }
  }
  return t;
}

// Top-1 routing where a layer's expert is (the expert two layers back + the one a layer back)
// mod E: neither previous layer alone says anything, both together say everything.
Trace two_layer_trace(uint32_t seed, int tokens) {
  std::mt19937 rng(seed);
  Trace t;
  t.model = {"two-layer", kLayers, kExperts, 1};
  for (int i = 0; i < tokens; ++i) {
    TokenRecord r{0, i, {}};
    std::vector<int32_t> e(kLayers);
    for (int l = 0; l < kLayers; ++l) {
      e[size_t(l)] = l < 2 ? int32_t(rng() % kExperts) : (e[size_t(l - 2)] + e[size_t(l - 1)]) % kExperts;
      r.layers.push_back({l, {e[size_t(l)]}, {}});
    }
    t.tokens.push_back(std::move(r));
  }
  return t;
}

const PredictorScores& find(const std::vector<PredictorScores>& s, const std::string& name) {
  for (const auto& p : s)
    if (p.name == name) return p;
  throw std::runtime_error("no predictor " + name);
}

TEST(RoutingPredictors, TransitionsPredictLayeredRoutingAndPopularityCannot) {
  const auto s = evaluate_predictors(layered_trace(1, 4, 200, 0.9), layered_trace(2, 2, 200, 0.9), {});
  const double random = find(s, "random").ahead[0].precision();
  EXPECT_NEAR(random, double(kTopK) / kExperts, 1e-12);
  EXPECT_NEAR(find(s, "popularity").ahead[0].precision(), random, 0.05);
  // The first expert follows 90% of the time: about half of a top-2 guess is right.
  EXPECT_GT(find(s, "stats").ahead[0].precision(), random + 0.25);
  EXPECT_GT(find(s, "history").ahead[0].precision(), random + 0.25);
  // Two permutations ahead still carry (0.9^2 of the time).
  EXPECT_GT(find(s, "stats").ahead[1].precision(), random + 0.2);
  EXPECT_GT(find(s, "history").ahead[1].precision(), random + 0.2);
  EXPECT_FALSE(find(s, "gate").available);
}

TEST(RoutingPredictors, HistoryLearnsTheSequencesOwnExperts) {
  // Test sequences have favourites no training sequence had.
  const auto s = evaluate_predictors(sequence_trace(3, 6, 100, 0.7), sequence_trace(4, 3, 100, 0.7), {});
  const double random = find(s, "random").ahead[0].precision();
  EXPECT_NEAR(find(s, "stats").ahead[0].precision(), random, 0.06);
  EXPECT_NEAR(find(s, "popularity").ahead[0].precision(), random, 0.06);
  for (int d = 0; d < 3; ++d) EXPECT_GT(find(s, "history").ahead[size_t(d)].precision(), random + 0.35) << d + 1 << " ahead";
}

TEST(RoutingPredictors, HistoryConditionsOnTwoLayers) {
  const auto s = evaluate_predictors(two_layer_trace(5, 3000), two_layer_trace(6, 500), {});
  const double random = find(s, "random").ahead[0].precision();
  EXPECT_NEAR(find(s, "stats").ahead[0].precision(), random, 0.05);
  EXPECT_GT(find(s, "history").ahead[0].precision(), 0.8);
}

// A trace whose recorded gate guesses are right with probability `p` (else a wrong expert).
Trace with_guesses(Trace t, double p, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& token : t.tokens)
    for (size_t i = 0; i < token.layers.size(); ++i)
      for (int ahead = 1; ahead <= 3 && i + size_t(ahead) < token.layers.size(); ++ahead) {
        GateGuess g{ahead, {}};
        for (int32_t e : token.layers[i + size_t(ahead)].experts) {
          int32_t guess = e;
          if (u(rng) >= p) do guess = int32_t(rng() % kExperts);
            while (guess == e);
          if (!std::count(g.experts.begin(), g.experts.end(), guess)) g.experts.push_back(guess);
        }
        token.layers[i].guesses.push_back(std::move(g));
      }
  return t;
}

TEST(RoutingPredictors, RecordedGateGuessesSurviveTheTraceFileAndAreJudged) {
  const Trace train = sequence_trace(8, 2, 50, 0.5);
  const Trace test = with_guesses(sequence_trace(9, 2, 50, 0.5), 0.9, 1);
  const auto path = std::filesystem::temp_directory_path() / "moe_predict_guesses.trace";
  write_trace(path, test, "test");
  const Trace back = read_trace(path);
  ASSERT_EQ(back.tokens.size(), test.tokens.size());
  for (size_t t = 0; t < test.tokens.size(); ++t)
    for (size_t l = 0; l < test.tokens[t].layers.size(); ++l) {
      const auto& a = test.tokens[t].layers[l].guesses;
      const auto& b = back.tokens[t].layers[l].guesses;
      ASSERT_EQ(a.size(), b.size());
      for (size_t g = 0; g < a.size(); ++g) {
        EXPECT_EQ(a[g].ahead, b[g].ahead);
        EXPECT_EQ(a[g].experts, b[g].experts);
      }
    }
  EXPECT_TRUE(has_gate_guesses(back));
  const auto s = evaluate_predictors(train, back, {});
  ASSERT_TRUE(find(s, "gate").available);
  for (int d = 0; d < 3; ++d) EXPECT_NEAR(find(s, "gate").ahead[size_t(d)].recall(), 0.9, 0.05);
  // A trace without guesses (as every trace before them) reads with none, and is judged without gate.
  write_trace(path, train, "test");
  EXPECT_FALSE(has_gate_guesses(read_trace(path)));
  // A guess outside the model, or past its last layer, is refused.
  Trace bad = test;
  bad.tokens[0].layers[0].guesses[0].experts[0] = kExperts;
  EXPECT_THROW(write_trace(path, bad, "test"), Error);
  bad = test;
  bad.tokens[0].layers[kLayers - 1].guesses.push_back({1, {0}});
  EXPECT_THROW(write_trace(path, bad, "test"), Error);
  std::filesystem::remove(path);
}

TEST(RoutingPredictors, SplitBySequenceAndUnknownNames) {
  const Trace t = sequence_trace(10, 5, 10, 0.5);
  const TraceSplit split = split_by_sequence(t);
  EXPECT_EQ(split.train_sequences, 2);
  EXPECT_EQ(split.test_sequences, 3);
  EXPECT_EQ(split.train.tokens.size() + split.test.tokens.size(), t.tokens.size());
  for (const auto& a : split.train.tokens)
    for (const auto& b : split.test.tokens) ASSERT_NE(a.sequence_id, b.sequence_id);
  EXPECT_THROW(split_by_sequence(sequence_trace(10, 1, 10, 0.5)), Error);
  EXPECT_THROW(make_routing_predictor("psychic", t, t.model), Error);
  Trace other = t;
  other.model.num_experts += 1;
  EXPECT_THROW(make_routing_predictor("stats", t, other.model), Error);
  EXPECT_THROW(evaluate_predictors(t, other, {}), Error);
}

// --- the simulator replays the same predictors -------------------------------------------

ModelShape shape() { return testing::tiny_shape(kLayers, kExperts, kTopK); }

HardwareProfile hardware() {
  HardwareProfile h;
  h.name = "tiny";
  h.gpu_count = 1;
  h.gpu_memory_bytes = 1e9;
  h.gpu_memory_bandwidth = 2e10;  // expert compute as slow as a copy: a prefetch can hide
  h.gpu_bf16_flops = 1e14;
  h.host_to_device_bandwidth = 2e10;
  h.host_memory_bytes = 64e9;
  h.host_memory_bandwidth = 5e10;
  h.cpu_cores = 8;
  h.cpu_flops = 1e12;
  h.nvme_read_bandwidth = 5e9;
  h.nvme_iops = 1e6;
  return h;
}

PlacementPlan offloaded_plan(const ModelShape& s, int slots) {
  PlacementPlan p;
  p.set_model_name(s.name);
  p.set_batch(1);
  p.set_context(128);
  p.set_num_layers(s.num_sparse_layers);
  p.set_num_experts(s.num_experts);
  p.set_expert_bytes_bf16(s.expert_bytes(ExpertFormat::kBF16));
  for (int l = 0; l < s.num_sparse_layers; ++l)
    for (int e = 0; e < s.num_experts; ++e) {
      auto* x = p.add_experts();
      x->set_layer(l);
      x->set_expert(e);
      x->set_home(proto::TIER_HOST);
      x->add_devices(0);
    }
  auto* dev = p.add_devices();
  dev->set_device(0);
  dev->set_memory_bytes(int64_t(1) << 40);
  dev->set_cache_slots(slots);
  dev->set_cache_bytes(int64_t(slots) * p.expert_bytes_bf16());
  p.set_host_pool_bytes(int64_t(1) << 40);
  validate_plan(p, "test plan");
  return p;
}

TEST(RoutingPredictors, TheSimulatorReplaysThemOutOfSample) {
  const ModelShape s = shape();
  const CostModel cost(s, hardware());
  const PlacementPlan plan = offloaded_plan(s, 24);
  const Trace train = layered_trace(11, 4, 100, 0.9);
  const Trace test = with_guesses(layered_trace(12, 2, 100, 0.9), 0.9, 2);
  const SimOptions base{.policy = "lru", .admission = "all"};
  SimOptions o = base;
  const SimResult none = simulate(plan, test, cost, o);
  o.prefetch = "oracle";
  const SimResult oracle = simulate(plan, test, cost, o);
  o.prefetch = "gate";
  const SimResult gate = simulate(plan, test, cost, o);
  o.prefetch = "gate:2";
  const SimResult gate2 = simulate(plan, test, cost, o);
  o.prefetch = "history";
  o.profile = &train;
  const SimResult history = simulate(plan, test, cost, o);
  EXPECT_TRUE(history.training.empty());
  o.prefetch = "stats:2";
  const SimResult stats2 = simulate(plan, test, cost, o);
  EXPECT_GT(gate.prefetch_precision(), 0.8);
  EXPECT_GT(gate.prefetch_recall(), 0.5);
  EXPECT_GT(gate2.prefetches, gate.prefetches);
  EXPECT_GT(history.prefetch_precision(), 0.3);  // a uniform guess is right 1 time in 8
  EXPECT_GT(stats2.prefetches, 0);
  EXPECT_LT(gate.stall_seconds, none.stall_seconds);
  EXPECT_GT(oracle.prefetch_precision(), gate.prefetch_precision());
  // Without a training trace the replayed one is split by sequence, and says so.
  o.profile = nullptr;
  o.prefetch = "stats";
  const SimResult split = simulate(plan, test, cost, o);
  EXPECT_EQ(split.tokens, 100);
  EXPECT_NE(split.training.find("1 of the trace's 2 sequences"), std::string::npos) << split.training;
  Trace lone = test;
  for (auto& t : lone.tokens) t.sequence_id = 0;
  EXPECT_THROW(simulate(plan, lone, cost, o), Error);
  // gate needs recorded guesses; depths are 1 to 3.
  o.prefetch = "gate";
  EXPECT_THROW(simulate(plan, train, cost, o), Error);
  o.prefetch = "gate:4";
  EXPECT_THROW(simulate(plan, test, cost, o), Error);
  o.prefetch = "oracle:2";
  EXPECT_THROW(simulate(plan, test, cost, o), Error);
}

}  // namespace
}  // namespace moe::placement
