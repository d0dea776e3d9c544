// The offloading executor's invariant: for the lossless miss policies, logits are bit-identical
// to the resident run at every budget (down to a single expert slot), host pool, device count,
// plan, policy and predictor. Checked as a property over randomized configurations on the
// transformers fixtures, prefill and decode; plus the lossy policy, budgets and traces.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "offload/executor/expert_importance.h"
#include "offload/executor/offloaded_experts.h"
#include "offload/executor/routing_trace.h"
#include "offload/store/model_layout.h"
#include "runtime/core/error.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/resident_experts.h"
#include "runtime/model/routing.h"
#include "tests/unit/model/greedy_logits.h"

namespace moe::offload {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";
const std::vector<int32_t> kPrompt = {1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3};

// Prefill logits of every prompt position, then 5 greedy decode steps' logits.
std::vector<float> run(model::Transformer& t) { return moe::testing::prefill_and_greedy_logits(t, kPrompt, 5); }

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A plan pinning a random subset of experts on random devices (within `slots` per device),
// homing a random subset on the host.
placement::PlacementPlan random_plan(const loading::ModelConfig& c, int devices, int pin_per_device, std::mt19937& rng) {
  placement::PlacementPlan p;
  p.set_num_layers(c.num_sparse_layers());
  p.set_num_experts(c.num_experts);
  p.set_batch(1);
  p.set_context(64);
  p.set_expert_bytes_bf16(1);
  std::vector<int> pinned(size_t(devices), 0);
  for (int l = 0; l < c.num_sparse_layers(); ++l)
    for (int e = 0; e < c.num_experts; ++e) {
      auto* x = p.add_experts();
      x->set_layer(l);
      x->set_expert(e);
      const int d = int(rng() % unsigned(devices));
      if (rng() % 3 == 0 && pinned[size_t(d)] < pin_per_device) {
        x->set_home(placement::proto::TIER_GPU);
        x->add_devices(d);
        ++pinned[size_t(d)];
        const int other = int(rng() % unsigned(devices));
        if (other != d && pinned[size_t(other)] < pin_per_device && rng() % 2) {  // a replica
          x->add_devices(other);
          ++pinned[size_t(other)];
        }
      } else {
        x->set_home(rng() % 2 ? placement::proto::TIER_HOST : placement::proto::TIER_NVME);
        x->add_devices(d);
      }
    }
  for (int d = 0; d < devices; ++d) p.add_devices()->set_device(d);
  return p;
}

TEST(Executor, BitIdenticalAtEveryBudgetDeviceCountPlanAndPredictor) {
  int configurations = 0;
  const auto fixtures = {"mixtral", "qwen2_moe", "deepseek", "moe_plus_plus", "bam-shared-kv", "ds_moe"};
  for (const char* fixture : fixtures) {
    model::LoadedModel m = model::load_model(kFixtures / fixture);
    model::Transformer& t = *m.transformer;
    // DS-MoE's GeLU experts under threshold routing: a varying number of experts per token.
    if (std::string_view(fixture) == "ds_moe") t.set_routing_mode(model::parse_routing_mode("threshold:1"));
    const std::vector<float> reference = run(t);
    // A profile trace for the stats predictor, recorded from the resident run.
    const auto trace_path = std::filesystem::temp_directory_path() / (std::string("moe_exec_") + fixture + ".trace");
    {
      TraceRecorder recorder(trace_path, t.config(), fixture, "test");
      t.set_routing_hook(recorder.hook());
      run(t);
      recorder.finish();
      t.set_routing_hook({});
    }
    const placement::Trace profile = placement::read_trace(trace_path);
    const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
    const int total = t.config().num_sparse_layers() * t.config().num_experts;
    std::mt19937 rng(42);
    for (int trial = 0; trial < 14; ++trial) {
      OffloadOptions o;
      o.devices = 1 + int(rng() % 3);
      const int slots = trial == 0 ? 1 : 1 + int(rng() % unsigned(total));
      o.device_bytes = uint64_t(slots) * expert + rng() % expert;
      o.host_bytes = uint64_t(rng() % unsigned(total + 1)) * expert;
      o.policy = std::vector<std::string>{"lru", "lfu", "multi"}[rng() % 3];
      o.miss = rng() % 4 == 0 ? "cpu" : "wait";
      o.admission = rng() % 2 ? "frequency" : "all";
      placement::PlacementPlan plan;
      const bool with_plan = rng() % 2 && slots > 1;
      if (with_plan) {
        plan = random_plan(t.config(), o.devices, slots - 1, rng);
        o.plan = &plan;
        o.host_bytes = uint64_t(total) * expert;  // room for every host-homed expert
      }
      const std::string predictor = std::vector<std::string>{"none",    "next-layer", "stacked:2",       "stats",
                                                             "history", "gate:2",     "next-layer+stats", "history:2+next-layer"}[rng() % 8];
      SCOPED_TRACE(fmt::format("{} trial {}: {} devices, {} slots, host {} experts, {} ({}), miss {}, plan {}, predictor {}",
                               fixture, trial, o.devices, slots, o.host_bytes / expert, o.policy, o.admission, o.miss,
                               with_plan, predictor));
      const int guesses = int(rng() % 4);  // 0: top-k
      OffloadedExperts runner(t, o, make_predictor(predictor, t, &profile, std::min(guesses, t.config().num_experts)));
      t.set_expert_runner(&runner);
      const std::vector<float> got = run(t);
      t.set_expert_runner(nullptr);
      EXPECT_TRUE(bit_equal(got, reference));
      const OffloadStats s = runner.stats();
      EXPECT_EQ(s.uses, s.pinned_hits + s.offloaded_uses);
      EXPECT_LE(s.prefetches_used, s.prefetches);
      EXPECT_LE(s.cache_hits + s.late_hits, s.offloaded_uses);
      if (predictor == "none") {
        EXPECT_EQ(s.prefetches, 0u);
        EXPECT_EQ(s.late_hits, 0u);  // only a prefetch can be in flight when its expert is used
      }
      if (o.devices > 1) {
        EXPECT_GT(s.bytes_between_devices, 0u);
      }
      ++configurations;
    }
  }
  EXPECT_EQ(configurations, int(fixtures.size()) * 14);
}

TEST(Executor, VariableExpertsPerTokenUnderThresholdRouting) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  model::Transformer& t = *m.transformer;
  t.set_routing_mode(model::parse_routing_mode("threshold:0.9"));
  int64_t tokens = 0, assignments = 0;
  std::set<size_t> counts;
  t.set_routing_hook([&](int, std::span<const int64_t>, model::RoutingDecision& d) {
    tokens += d.num_tokens();
    assignments += d.num_assignments();
    for (int64_t i = 0; i < d.num_tokens(); ++i) counts.insert(d.experts_of(i).size());
  });
  const std::vector<float> reference = run(t);
  t.set_routing_hook({});
  EXPECT_GT(counts.size(), 1u);  // the number of experts varies per token
  const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
  for (int devices : {1, 2}) {
    OffloadOptions o;
    o.devices = devices;
    o.device_bytes = expert;
    o.host_bytes = 4 * expert;
    OffloadedExperts runner(t, o, make_predictor("next-layer", t, nullptr));
    t.set_expert_runner(&runner);
    EXPECT_TRUE(bit_equal(run(t), reference)) << devices << " devices";
    t.set_expert_runner(nullptr);
  }
  t.set_routing_mode({});
}

// A communicator that scales what it carries: the executor must compute from, and write, what
// arrives, so anything but 1 changes the logits and 1 changes no bit.
class ScalingCommunicator final : public Communicator {
 public:
  ScalingCommunicator(int devices, float factor) : inner_(devices), factor_(factor) {}
  int size() const override { return inner_.size(); }
  std::vector<std::vector<std::vector<float>>> all_to_all(std::vector<std::vector<std::vector<float>>> send) override {
    for (auto& row : send)
      for (auto& part : row)
        for (float& v : part) v *= factor_;
    ++calls;
    return inner_.all_to_all(std::move(send));
  }
  uint64_t bytes_moved() const override { return inner_.bytes_moved(); }
  int calls = 0;

 private:
  InProcessCommunicator inner_;
  float factor_;
};

TEST(Executor, TokensTravelThroughTheCommunicatorBothWays) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  model::Transformer& t = *m.transformer;
  const std::vector<float> reference = run(t);
  const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
  for (const float factor : {1.0f, 0.5f}) {
    ScalingCommunicator* used = nullptr;
    OffloadOptions o;
    o.devices = 3;
    o.device_bytes = 4 * expert;
    o.make_communicator = [&](int devices) {
      auto c = std::make_unique<ScalingCommunicator>(devices, factor);
      used = c.get();
      return c;
    };
    OffloadedExperts runner(t, o);
    t.set_expert_runner(&runner);
    const std::vector<float> got = run(t);
    t.set_expert_runner(nullptr);
    ASSERT_NE(used, nullptr);
    EXPECT_EQ(used->calls, 2 * t.config().num_sparse_layers() * 6);  // dispatch and combine, per layer per forward
    EXPECT_GT(runner.stats().bytes_between_devices, 0u);
    EXPECT_EQ(bit_equal(got, reference), factor == 1.0f) << "factor " << factor;
  }
}

TEST(Executor, SingleSlotWaitsAndCountsEveryTier) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  model::Transformer& t = *m.transformer;
  const std::vector<float> reference = run(t);
  const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
  OffloadOptions o;
  o.device_bytes = expert;  // one slot
  o.host_bytes = 64 * expert;  // every expert fits: the second use of one comes from the host
  OffloadedExperts runner(t, o, make_predictor("next-layer", t, nullptr));
  EXPECT_EQ(runner.cache_slots(0), 1);
  t.set_expert_runner(&runner);
  EXPECT_TRUE(bit_equal(run(t), reference));
  t.set_expert_runner(nullptr);
  const OffloadStats s = runner.stats();
  EXPECT_GT(s.nvme_reads, 0u);
  EXPECT_GT(s.host_hits, 0u);
  EXPECT_GT(s.bytes_host_to_device, 0u);
  EXPECT_GE(s.bytes_nvme_to_host, s.nvme_reads * expert);
}

TEST(Executor, ExpertsReadFromAStoreThroughItsReader) {
  const auto store_path = std::filesystem::temp_directory_path() / "moe_exec_test.moe";
  {
    const loading::ModelConfig config = loading::load_model_config(kFixtures / "qwen3_moe");
    pack_store(kFixtures / "qwen3_moe", store_path, store_layout_for(config), {});
  }
  model::LoadedModel folder = model::load_model(kFixtures / "qwen3_moe");
  const std::vector<float> reference = run(*folder.transformer);
  model::LoadedModel m = model::load_model(store_path);
  const auto* source = dynamic_cast<const StoreWeightSource*>(m.source.get());
  ASSERT_NE(source, nullptr);
  for (uint64_t host_experts : {0, 3, 1000}) {
    OffloadOptions o;
    o.store = source->store();
    const uint64_t expert = ExpertBacking(m.transformer->weights()).layout().bytes;
    o.device_bytes = 2 * expert;
    o.host_bytes = host_experts * expert;
    OffloadedExperts runner(*m.transformer, o, make_predictor("next-layer", *m.transformer, nullptr));
    m.transformer->set_expert_runner(&runner);
    EXPECT_TRUE(bit_equal(run(*m.transformer), reference)) << host_experts << " experts in the host pool";
    m.transformer->set_expert_runner(nullptr);
    EXPECT_GT(runner.stats().nvme_reads, 0u);
  }
}

// A model living in int8/int4 (--weights: converted at load, or an expert store's copies read
// into every tier) offloads like any other: every budget gives the resident quantised run's bits,
// and the slots, copies and reads move the smaller bytes.
TEST(Executor, QuantisedExpertsGiveTheResidentQuantisedBitsAtEveryBudget) {
  const auto store_path = std::filesystem::temp_directory_path() / "moe_exec_quantised.moe";
  const loading::ModelConfig config = loading::load_model_config(kFixtures / "qwen3_moe");
  PackOptions pack;
  pack.extra_formats = {QuantFormat{DType::kI8, 16}, QuantFormat{DType::kI4, 16}};
  pack_store(kFixtures / "qwen3_moe", store_path, store_layout_for(config), pack);
  struct Case {
    std::filesystem::path model;
    std::string weights, parts;
    bool from_store;
  };
  const std::vector<Case> cases = {{kFixtures / "qwen3_moe", "int8:16", "experts", false},
                                   {kFixtures / "mixtral", "int4:16", "all", false},
                                   {kFixtures / "deepseek", "int8:16", "experts,dense", false},
                                   {store_path, "int8", "experts", true},
                                   {store_path, "int4:16", "all", true},
                                   {store_path, "int8:32", "experts", false}};  // no such copy: converted at load
  std::mt19937 rng(7);
  for (const Case& c : cases) {
    model::LoadOptions options;
    options.weights = model::parse_weight_format(c.weights, c.parts);
    model::LoadedModel m = model::load_model(c.model, options);
    model::Transformer& t = *m.transformer;
    const std::vector<float> reference = run(t);
    std::shared_ptr<const ExpertStore> store;
    if (const auto* s = dynamic_cast<const StoreWeightSource*>(m.source.get())) store = s->store();
    const uint64_t expert = ExpertBacking(t.weights(), store).layout().bytes;
    const uint64_t stored = ExpertBacking(model::load_model(c.model).transformer->weights()).layout().bytes;
    EXPECT_LT(expert, stored * 2 / 3) << c.weights;  // int8 with scales is 9/16 of bf16, int4 5/16
    const int total = t.config().num_sparse_layers() * t.config().num_experts;
    for (int trial = 0; trial < 6; ++trial) {
      OffloadOptions o;
      o.store = store;
      o.devices = 1 + trial % 2;
      const int slots = std::vector<int>{1, 2, total / 2, total, 1 + int(rng() % unsigned(total)), 3}[size_t(trial)];
      o.device_bytes = uint64_t(slots) * expert;
      o.host_bytes = uint64_t(trial % 3) * expert;
      const std::string predictor = trial % 2 ? "next-layer" : "none";
      SCOPED_TRACE(fmt::format("{} {} {}: {} devices, {} slots, host {} experts, predictor {}", c.model.filename().string(),
                               c.weights, c.parts, o.devices, slots, trial % 3, predictor));
      OffloadedExperts runner(t, o, make_predictor(predictor, t, nullptr));
      EXPECT_EQ(runner.experts_from_store(), c.from_store);
      EXPECT_NE(runner.expert_format().find(c.weights.substr(0, 4)), std::string::npos) << runner.expert_format();
      t.set_expert_runner(&runner);
      EXPECT_TRUE(bit_equal(run(t), reference));
      t.set_expert_runner(nullptr);
      const OffloadStats s = runner.stats();
      EXPECT_EQ(s.bytes_host_to_device % expert, 0u);
      if (slots < total / o.devices) {
        EXPECT_GT(s.bytes_host_to_device, 0u);
      }
      if (c.from_store) {
        EXPECT_GT(s.bytes_nvme_to_host, 0u);
      }
    }
  }
  std::filesystem::remove(store_path);
}

TEST(Executor, HobbitReadsTheStoresLowPrecisionCopies) {
  const auto store_path = std::filesystem::temp_directory_path() / "moe_exec_int4.moe";
  const loading::ModelConfig config = loading::load_model_config(kFixtures / "qwen3_moe");
  PackOptions pack;
  pack.extra_formats = {QuantFormat{DType::kI4, 32}};
  pack_store(kFixtures / "qwen3_moe", store_path, store_layout_for(config), pack);
  model::LoadedModel folder = model::load_model(kFixtures / "qwen3_moe");
  const std::vector<float> reference = run(*folder.transformer);
  model::LoadedModel m = model::load_model(store_path);
  OffloadOptions o;
  o.store = dynamic_cast<const StoreWeightSource&>(*m.source).store();
  const uint64_t expert = ExpertBacking(m.transformer->weights()).layout().bytes;
  o.device_bytes = expert;
  o.miss = "hobbit";
  o.hobbit_t1 = 1.01;  // every miss takes the int4 copy
  o.hobbit_t2 = 0.0;
  OffloadedExperts runner(*m.transformer, o);
  m.transformer->set_expert_runner(&runner);
  const std::vector<float> got = run(*m.transformer);
  m.transformer->set_expert_runner(nullptr);
  const OffloadStats s = runner.stats();
  EXPECT_GT(s.low_precision, 0u);
  EXPECT_EQ(s.skipped, 0u);
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) num += std::pow(got[i] - reference[i], 2), den += std::pow(reference[i], 2);
  EXPECT_GT(num, 0.0);                    // lossy
  EXPECT_LT(std::sqrt(num / den), 0.15);  // int4 with groups of 32: close to the bf16 logits
}

TEST(Executor, HobbitImportanceIsTheNormalisedMassFromTheExpertDown) {
  model::RoutingDecision r;
  // Token 0: weights 0.1, 0.6, 0.3 (by expert index); token 1: unnormalised 2, 2; token 2: one expert.
  r.add_token(std::vector<int32_t>{1, 4, 6}, std::vector<float>{0.1f, 0.6f, 0.3f});
  r.add_token(std::vector<int32_t>{0, 3}, std::vector<float>{2.0f, 2.0f});
  r.add_token(std::vector<int32_t>{5}, std::vector<float>{0.2f});
  const std::vector<float> got = hobbit_importance(r);
  const std::vector<float> want = {0.1f, 1.0f, 0.4f, 1.0f, 0.5f, 1.0f};
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << i;
}

TEST(Executor, HobbitMissPolicyIsLossyAndSaysSo) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  model::Transformer& t = *m.transformer;
  const std::vector<float> reference = run(t);
  const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
  OffloadOptions o;
  o.device_bytes = 2 * expert;
  o.miss = "hobbit";
  o.hobbit_t1 = 0.6;
  o.hobbit_t2 = 0.45;
  OffloadedExperts runner(t, o);
  t.set_expert_runner(&runner);
  const std::vector<float> got = run(t);
  t.set_expert_runner(nullptr);
  const OffloadStats s = runner.stats();
  EXPECT_GT(s.skipped + s.low_precision, 0u);
  EXPECT_FALSE(bit_equal(got, reference));
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) num += std::pow(got[i] - reference[i], 2), den += std::pow(reference[i], 2);
  EXPECT_LT(std::sqrt(num / den), 0.5);  // degraded, not garbage
}

TEST(Executor, ImpossibleBudgetsFailAtStartWithTheNumbers) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  const uint64_t expert = ExpertBacking(m.transformer->weights()).layout().bytes;
  OffloadOptions o;
  o.device_bytes = expert - 1;
  try {
    OffloadedExperts runner(*m.transformer, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("holds no expert"), std::string::npos) << e.what();
  }
  std::mt19937 rng(1);
  placement::PlacementPlan plan = random_plan(m.config, 1, 1000, rng);
  o.device_bytes = expert;  // the plan pins far more than one expert
  o.plan = &plan;
  o.host_bytes = uint64_t(1) << 30;
  EXPECT_THROW(OffloadedExperts(*m.transformer, o), Error);
  o.device_bytes = 4 * expert;
  o.devices = 2;  // the plan is for one device
  EXPECT_THROW(OffloadedExperts(*m.transformer, o), Error);
  o = {};
  o.device_bytes = expert;
  o.miss = "guess";
  EXPECT_THROW(OffloadedExperts(*m.transformer, o), Error);
  EXPECT_THROW(make_predictor("stats", *m.transformer, nullptr), Error);
  EXPECT_THROW(make_predictor("stacked:99", *m.transformer, nullptr), Error);
  EXPECT_THROW(make_predictor("history:4", *m.transformer, nullptr), Error);
  EXPECT_THROW(make_predictor("gate:0", *m.transformer, nullptr), Error);
  EXPECT_THROW(make_predictor("none+next-layer", *m.transformer, nullptr), Error);
  EXPECT_THROW(make_predictor("next-layer", *m.transformer, nullptr, m.config.num_experts + 1), Error);
  EXPECT_NE(make_predictor("gate:2+next-layer", *m.transformer, nullptr), nullptr);
}

// `moe profile`'s recording: beside each MoE layer's routing, what the next layers' routers
// guess from its input (gate_guesses, as the gate predictors), ranked; recording changes no logit.
TEST(Executor, GateGuessesAreRecordedBesideTheRouting) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  model::Transformer& t = *m.transformer;
  const std::vector<float> reference = run(t);
  const auto path = std::filesystem::temp_directory_path() / "moe_exec_guesses.trace";
  const int L = t.config().num_sparse_layers(), E = t.config().num_experts;
  {
    TraceRecorder recorder(path, t.config(), "mixtral", "test");
    t.set_routing_hook(recorder.hook());
    model::ResidentExperts resident(t.weights(), t.config().activation);
    GateGuessRecorder guesses(t, resident, recorder, 3, 4);
    t.set_expert_runner(&guesses);
    EXPECT_TRUE(bit_equal(run(t), reference));
    recorder.finish();
    t.set_expert_runner(nullptr);
    t.set_routing_hook({});
  }
  const placement::Trace trace = placement::read_trace(path);
  ASSERT_EQ(trace.tokens.size(), kPrompt.size() + 5);
  int64_t hits = 0, guessed = 0;
  for (const auto& token : trace.tokens)
    for (const auto& l : token.layers) {
      ASSERT_EQ(int(l.guesses.size()), std::min(3, L - 1 - l.layer)) << "layer " << l.layer;
      for (size_t g = 0; g < l.guesses.size(); ++g) {
        EXPECT_EQ(l.guesses[g].ahead, int(g) + 1);
        EXPECT_EQ(int(l.guesses[g].experts.size()), std::min(4, E));
        const auto& truth = token.layers[size_t(l.layer) + g + 1].experts;
        for (int i = 0; i < 2; ++i) {
          hits += std::count(truth.begin(), truth.end(), l.guesses[g].experts[size_t(i)]);
          ++guessed;
        }
      }
    }
  EXPECT_GT(guessed, 0);
  std::printf("recorded gate guesses on the random-weight fixture: %.1f%% of top-2 right (random: %.1f%%)\n",
              100.0 * double(hits) / double(guessed), 100.0 * 2 / E);
  std::filesystem::remove(path);
}

TEST(Executor, ReplayedTraceReproducesTheRecordedRun) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  model::Transformer& t = *m.transformer;
  const auto path = std::filesystem::temp_directory_path() / "moe_exec_replay.trace";
  TraceRecorder recorder(path, t.config(), "mixtral", "test");
  t.set_routing_hook(recorder.hook());
  const std::vector<float> recorded = run(t);
  recorder.finish();
  EXPECT_EQ(recorder.tokens(), int64_t(kPrompt.size()) + 5);
  placement::Trace trace = placement::read_trace(path);
  EXPECT_EQ(trace.gaps, 0);
  // Replaying the trace forces the same choices: the same logits. A trace of other choices
  // changes them.
  TraceReplayer same(trace, t.config());
  t.set_routing_hook(same.hook());
  EXPECT_TRUE(bit_equal(run(t), recorded));
  for (auto& token : trace.tokens)
    for (auto& l : token.layers)
      for (auto& e : l.experts) e = (e + 1) % t.config().num_experts;
  for (auto& token : trace.tokens)
    for (auto& l : token.layers) std::sort(l.experts.begin(), l.experts.end());
  TraceReplayer other(trace, t.config());
  t.set_routing_hook(other.hook());
  EXPECT_FALSE(bit_equal(run(t), recorded));
  t.set_routing_hook({});
  placement::Trace wrong = trace;
  wrong.model.num_layers += 1;
  EXPECT_THROW(TraceReplayer(wrong, t.config()), Error);
  // A trace shorter than the run is an error naming both lengths (it wrapped around).
  placement::Trace shorter = trace;
  shorter.tokens.resize(kPrompt.size() + 2);
  TraceReplayer short_replay(shorter, t.config());
  t.set_routing_hook(short_replay.hook());
  try {
    run(t);
    ADD_FAILURE() << "a run past the trace's end replayed it";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fmt::format("holds the routing of {} tokens, the run needs {}", kPrompt.size() + 2,
                                                     kPrompt.size() + 3)),
              std::string::npos)
        << e.what();
  }
  t.set_routing_hook({});
}

}  // namespace
}  // namespace moe::offload
