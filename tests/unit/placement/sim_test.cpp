// The simulator: hit rates with known answers, LRU equal to the reuse-distance closed form,
// Belady never beaten by an online policy, prefetch accounting, time bounded by the links,
// late hits apart from ready ones, the O(1) LRU against a brute-force one, cache sizes and scopes.
#include <gtest/gtest.h>

#include <deque>
#include <random>

#include "placement/sim/simulator.h"
#include "placement/trace/trace_stats.h"
#include "tests/unit/placement/tiny_shape.h"
#include "runtime/core/error.h"

namespace moe::placement {
namespace {

using testing::tiny_shape;

HardwareProfile tiny_hardware(int gpus = 1) {
  HardwareProfile h;
  h.name = "tiny";
  h.gpu_count = gpus;
  h.gpu_memory_bytes = 1e9;
  h.gpu_memory_bandwidth = 1e12;
  h.gpu_bf16_flops = 1e14;
  h.host_to_device_bandwidth = 2e10;
  h.peer_link = gpus > 1 ? PeerLink::kNvlink : PeerLink::kNone;
  h.peer_bandwidth = gpus > 1 ? 1e11 : 0;
  h.host_memory_bytes = 64e9;
  h.host_memory_bandwidth = 5e10;
  h.cpu_cores = 8;
  h.cpu_flops = 1e12;
  h.nvme_read_bandwidth = 5e9;
  h.nvme_iops = 1e6;
  return h;
}

// Every expert offloaded to the host and computed by device (expert % devices), with `slots`
// cache slots per device; experts in `pinned` live on device 0.
PlacementPlan cache_plan(const ModelShape& s, int slots, int devices = 1, const std::set<std::pair<int, int>>& pinned = {}) {
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
      x->set_home(pinned.count({l, e}) ? proto::TIER_GPU : proto::TIER_HOST);
      x->add_devices(pinned.count({l, e}) ? 0 : e % devices);
    }
  for (int d = 0; d < devices; ++d) {
    auto* dev = p.add_devices();
    dev->set_device(d);
    dev->set_memory_bytes(int64_t(1) << 40);
    dev->set_cache_slots(slots);
    dev->set_cache_bytes(int64_t(slots) * p.expert_bytes_bf16());
    dev->set_pinned_expert_bytes(d == 0 ? int64_t(pinned.size()) * p.expert_bytes_bf16() : 0);
  }
  p.set_host_pool_bytes(int64_t(1) << 40);
  validate_plan(p, "test plan");
  return p;
}

// A trace whose experts are listed ascending (the simulator's order within a layer). `variable`:
// each token uses 0..top_k experts per layer, as threshold routing and MoE++'s zero-computation
// experts make it.
Trace random_trace(int layers, int experts, int top_k, int tokens, double skew, uint32_t seed, bool variable = false) {
  std::mt19937 rng(seed);
  Trace t;
  t.model = {"tiny", layers, experts, top_k};
  std::vector<double> weights(static_cast<size_t>(experts));
  for (int e = 0; e < experts; ++e) weights[size_t(e)] = std::pow(double(e + 1), -skew);
  for (int i = 0; i < tokens; ++i) {
    TokenRecord r{0, i, {}};
    for (int l = 0; l < layers; ++l) {
      std::vector<int32_t> chosen;
      std::vector<double> w = weights;
      std::shuffle(w.begin(), w.end(), std::mt19937(uint32_t(l) * 977u + seed));  // each layer its own favourites
      const int count = variable ? int(rng() % uint32_t(top_k + 1)) : top_k;
      while (int(chosen.size()) < count) {
        const int e = std::discrete_distribution<int>(w.begin(), w.end())(rng);
        if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
      }
      std::sort(chosen.begin(), chosen.end());
      r.layers.push_back({l, chosen, {}});
    }
    t.tokens.push_back(std::move(r));
  }
  return t;
}

// `--batch B` steps the trace B tokens at a time, as a plan for that batch does: each expert a
// step needs is copied once for all its tokens, so the bytes per token fall with the batch.
TEST(Simulator, TheBatchOptionIsThePlansBatch) {
  const ModelShape s = tiny_shape(4, 8, 2);
  const Trace t = random_trace(4, 8, 2, 96, 0.5, 3);
  const CostModel cost(s, tiny_hardware());
  double previous_bytes = 1e30;
  for (const int batch : {1, 4, 16}) {
    PlacementPlan by_plan = cache_plan(s, 6);
    by_plan.set_batch(batch);
    SimOptions o;
    const SimResult a = simulate(by_plan, t, cost, o);
    o.batch = batch;
    const SimResult b = simulate(cache_plan(s, 6), t, cost, o);
    EXPECT_EQ(a.steps, b.steps);
    EXPECT_EQ(b.steps, (96 + batch - 1) / batch);
    EXPECT_EQ(a.bytes_host_to_gpu, b.bytes_host_to_gpu);
    EXPECT_DOUBLE_EQ(a.seconds, b.seconds);
    const double bytes = double(b.bytes_host_to_gpu[0]) / double(b.tokens);
    EXPECT_LT(bytes, previous_bytes) << "batch " << batch;
    previous_bytes = bytes;
  }
  SimOptions bad;
  bad.batch = -1;
  EXPECT_THROW(simulate(cache_plan(s, 6), t, cost, bad), Error);
}

TEST(Simulator, LruMatchesTheReuseDistanceClosedForm) {
  const ModelShape s = tiny_shape(4, 8, 2);
  const CostModel cost(s, tiny_hardware());
  for (const bool variable : {false, true}) {
    const Trace t = random_trace(4, 8, variable ? 4 : 2, 300, 1.2, 1, variable);
    const TraceStats stats = compute_trace_stats(t);
    for (int slots : {1, 2, 5, 9, 16, 31, 32}) {
      const SimResult r = simulate(cache_plan(s, slots), t, cost, {.admission = "all"});
      EXPECT_EQ(r.uses, stats.activations);
      EXPECT_DOUBLE_EQ(r.cache_hit_rate(), stats.lru_hit_rate(slots)) << slots << " slots, variable " << variable;
      EXPECT_EQ(r.host_hits, r.uses - r.cache_hits);
    }
  }
}

TEST(Simulator, KnownHitRatesOnALoop) {
  // Keys 0..3 of one layer in a loop: LRU with 3 slots never hits. Belady (MIN with bypass)
  // keeps 0, 1, 2 and never caches 3, whose next use is always the farthest: after the three
  // cold misses and the first 3, each loop of four gives three hits.
  const ModelShape s = tiny_shape(1, 4, 1);
  Trace t;
  t.model = {"tiny", 1, 4, 1};
  for (int i = 0; i < 400; ++i) t.tokens.push_back({0, i, {{0, {i % 4}, {}}}});
  const CostModel cost(s, tiny_hardware());
  const auto lru = simulate(cache_plan(s, 3), t, cost, {.policy = "lru", .admission = "all"});
  EXPECT_EQ(lru.cache_hits, 0);
  const auto belady = simulate(cache_plan(s, 3), t, cost, {.policy = "belady"});
  EXPECT_EQ(belady.cache_hits, 99 * 3);
  const auto big = simulate(cache_plan(s, 4), t, cost, {.policy = "lru"});
  EXPECT_EQ(big.cache_hits, 396);  // everything after the four cold misses
  // The engine's default admission keeps 0, 1, 2 as Belady does (3 is never more frequent
  // than its victim), without knowing the future.
  const auto admitted = simulate(cache_plan(s, 3), t, cost, {.policy = "lru"});
  EXPECT_EQ(admitted.cache_hits, 99 * 3);
}

TEST(Simulator, BeladyIsNeverBeatenByAnOnlinePolicy) {
  int cases = 0;
  for (uint32_t seed = 0; seed < 12; ++seed) {
    const int layers = 1 + int(seed % 4), experts = 4 + int(seed % 5) * 3, k = 1 + int(seed % 2);
    const ModelShape s = tiny_shape(layers, experts, k);
    const CostModel cost(s, tiny_hardware(1 + int(seed % 2)));
    const Trace t = random_trace(layers, experts, k + int(seed % 3 == 0), 150, 0.3 * double(seed % 5), seed,
                                 /*variable=*/seed % 3 == 0);
    for (int slots : {1, 3, 7, 12}) {
      const int devices = 1 + int(seed % 2);
      const auto belady = simulate(cache_plan(s, slots, devices), t, cost, {.policy = "belady"});
      for (const char* policy : {"lru", "lfu", "multi"}) {
        const auto online = simulate(cache_plan(s, slots, devices), t, cost, {.policy = policy});
        EXPECT_GE(belady.cache_hits, online.cache_hits) << policy << " seed " << seed << " slots " << slots;
        EXPECT_LE(belady.seconds, online.seconds * (1 + 1e-12)) << policy << " seed " << seed << " slots " << slots;
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 12 * 4 * 3);
}

TEST(Simulator, PrefetchAccountingAndTheLinkBound) {
  // Expert compute as slow as a copy, so that a copy started a layer early can hide.
  const ModelShape s = tiny_shape(4, 8, 2);
  HardwareProfile hw = tiny_hardware();
  hw.gpu_memory_bandwidth = hw.host_to_device_bandwidth;
  const CostModel cost(s, hw);
  const Trace t = random_trace(4, 8, 2, 200, 0.8, 3);
  const PlacementPlan plan = cache_plan(s, 12);
  const auto none = simulate(plan, t, cost, {.policy = "lru", .admission = "all", .prefetch = "none"});
  const auto exact = simulate(plan, t, cost, {.policy = "lru", .admission = "all", .prefetch = "oracle"});
  const Trace train = random_trace(4, 8, 2, 200, 0.8, 4);  // learnt from other routing than the replayed
  const auto stats = simulate(plan, t, cost, {.policy = "lru", .admission = "all", .prefetch = "stats", .profile = &train});
  EXPECT_EQ(none.prefetches, 0);
  EXPECT_GT(exact.prefetches, 0);
  EXPECT_GT(exact.prefetch_recall(), 0.4);  // layer 0 and uses already cached are not prefetched
  EXPECT_GT(exact.prefetch_precision(), 0.9);     // and is almost never wrong
  EXPECT_LT(stats.prefetch_precision(), exact.prefetch_precision());
  EXPECT_LT(exact.stall_seconds, none.stall_seconds);
  // No run beats the time its copies alone need on the host link.
  for (const auto* r : {&none, &exact, &stats}) {
    const double link = double(r->bytes_host_to_gpu[0]) / hw.host_to_device_bandwidth;
    EXPECT_GE(r->seconds, link * 0.999);
    EXPECT_GT(r->tokens_per_second(), 0);
  }
}

TEST(Simulator, PinnedExpertsNeverMissAndDisagreementsAreRefused) {
  const ModelShape s = tiny_shape(2, 4, 1);
  const CostModel cost(s, tiny_hardware());
  const Trace t = random_trace(2, 4, 1, 50, 0.0, 5);
  std::set<std::pair<int, int>> all;
  for (int l = 0; l < 2; ++l)
    for (int e = 0; e < 4; ++e) all.insert({l, e});
  const auto r = simulate(cache_plan(s, 0, 1, all), t, cost, {});
  EXPECT_EQ(r.pinned_hits, r.uses);
  EXPECT_EQ(r.bytes_host_to_gpu[0], 0);
  EXPECT_DOUBLE_EQ(r.stall_seconds, 0.0);
  EXPECT_THROW(simulate(cache_plan(s, 1), random_trace(3, 4, 1, 5, 0, 1), cost, {}), Error);  // layers differ
  EXPECT_THROW(simulate(cache_plan(s, 1), t, cost, {.policy = "random"}), Error);
  EXPECT_THROW(simulate(cache_plan(s, 1, 2), t, cost, {}), Error);  // two devices, one GPU
}

// The LRU hits of each cache by brute force: a recency list searched linearly, in the
// simulator's access order (per step, layer by layer, experts ascending; batch 1).
int64_t reference_lru_hits(const Trace& t, int64_t slots, int devices, bool per_layer, int layers) {
  const int caches = per_layer ? layers : 1;
  std::vector<std::deque<std::pair<int, int>>> lists(size_t(devices) * size_t(caches));  // most recent first
  int64_t hits = 0;
  for (const TokenRecord& r : t.tokens)
    for (const LayerRouting& l : r.layers)
      for (int32_t e : l.experts) {
        const int c = per_layer ? l.layer : 0;
        const int64_t capacity = slots / caches + (c < slots % caches ? 1 : 0);
        auto& list = lists[size_t(e % devices) * size_t(caches) + size_t(c)];
        const auto it = std::find(list.begin(), list.end(), std::make_pair(l.layer, int(e)));
        if (it != list.end()) {
          ++hits;
          list.erase(it);
        } else if (capacity > 0 && int64_t(list.size()) == capacity) {
          list.pop_back();
        }
        if (capacity > 0) list.push_front({l.layer, int(e)});
      }
  return hits;
}

TEST(Simulator, LruEqualsABruteForceLruOnRandomTraces) {
  int cases = 0;
  for (uint32_t seed = 0; seed < 10; ++seed) {
    const int layers = 1 + int(seed % 4), experts = 4 + int(seed % 4) * 5, k = 1 + int(seed % 3);
    const ModelShape s = tiny_shape(layers, experts, k);
    const int devices = 1 + int(seed % 2);
    const CostModel cost(s, tiny_hardware(devices));
    const Trace t = random_trace(layers, experts, k, 200, 0.25 * double(seed % 6), seed, /*variable=*/seed % 2 == 0);
    for (const bool per_layer : {false, true})
      for (const int64_t slots : {0, 1, 2, 5, 11, 40}) {
        SimOptions o;
        o.admission = "all";    // the reference is plain LRU
        o.cache_slots = slots;  // overrides the plan's 3
        o.cache_scope = per_layer ? "layer" : "shared";
        const SimResult r = simulate(cache_plan(s, 3, devices), t, cost, o);
        EXPECT_EQ(r.cache_hits, reference_lru_hits(t, slots, devices, per_layer, layers))
            << "seed " << seed << " slots " << slots << " per layer " << per_layer;
        EXPECT_EQ(r.late_hits, 0);  // without prefetch every hit has landed
        EXPECT_EQ(r.ready_hits + r.late_hits + r.misses(), r.offloaded_uses);
        ++cases;
      }
  }
  EXPECT_EQ(cases, 10 * 2 * 6);
}

TEST(Simulator, CacheSlotsAndScopeChangeTheCache) {
  const ModelShape s = tiny_shape(4, 8, 2);
  const CostModel cost(s, tiny_hardware());
  const Trace t = random_trace(4, 8, 2, 200, 0.8, 7);
  SimOptions o;
  o.cache_slots = 32;  // every expert fits: only the 32 cold misses
  const SimResult all = simulate(cache_plan(s, 1), t, cost, o);
  EXPECT_EQ(all.misses(), 32);
  o.cache_scope = "layer";  // 8 a layer: the same
  EXPECT_EQ(simulate(cache_plan(s, 1), t, cost, o).misses(), 32);
  o.cache_slots = 0;
  EXPECT_EQ(simulate(cache_plan(s, 1), t, cost, o).cache_hits, 0);
  o.cache_scope = "global";
  EXPECT_THROW(simulate(cache_plan(s, 1), t, cost, o), Error);
  o.cache_scope = "shared";
  o.cache_slots = -2;
  EXPECT_THROW(simulate(cache_plan(s, 1), t, cost, o), Error);
  // Belady stays the bound in either scope.
  for (const char* scope : {"shared", "layer"}) {
    SimOptions lru{.policy = "lru"}, belady{.policy = "belady"};
    lru.cache_scope = belady.cache_scope = scope;
    lru.cache_slots = belady.cache_slots = 9;
    EXPECT_GE(simulate(cache_plan(s, 1), t, cost, belady).cache_hits, simulate(cache_plan(s, 1), t, cost, lru).cache_hits)
        << scope;
  }
}

TEST(Simulator, APrefetchStillInFlightIsALateHitNotAHit) {
  // Copies far slower than compute: the oracle's copies for layer l + 1 start at layer l and
  // cannot land in time, so its uses are late hits, and the hit rate counts none of them.
  const ModelShape s = tiny_shape(4, 8, 2);
  HardwareProfile hw = tiny_hardware();
  hw.host_to_device_bandwidth = 1e8;
  const CostModel cost(s, hw);
  const Trace t = random_trace(4, 8, 2, 60, 0.0, 11);
  const PlacementPlan plan = cache_plan(s, 6);  // room for the next layer's beside this one's
  const auto none = simulate(plan, t, cost, {.policy = "lru", .admission = "all", .prefetch = "none"});
  const auto oracle = simulate(plan, t, cost, {.policy = "lru", .admission = "all", .prefetch = "oracle"});
  EXPECT_GT(oracle.late_hits, 0) << oracle.prefetches << " prefetches, " << oracle.ready_hits << " ready";
  EXPECT_GT(oracle.late_hits, 10 * oracle.ready_hits + 1);  // nearly all
  EXPECT_EQ(oracle.cache_hits, oracle.ready_hits + oracle.late_hits);
  EXPECT_EQ(oracle.ready_hits + oracle.late_hits + oracle.misses(), oracle.offloaded_uses);
  EXPECT_DOUBLE_EQ(oracle.cache_hit_rate(), double(oracle.ready_hits) / double(oracle.offloaded_uses));
  EXPECT_LT(oracle.cache_hit_rate(), 0.1);
  EXPECT_GT(oracle.late_hit_rate(), 0.3);
  EXPECT_LE(oracle.gpu_hit_rate(), none.gpu_hit_rate() + 0.1);  // late hits do not inflate it
  EXPECT_GT(oracle.stall_seconds, 0);
  // With fast copies the same prefetches land in time and are ready hits.
  HardwareProfile fast = tiny_hardware();
  fast.gpu_memory_bandwidth = fast.host_to_device_bandwidth / 8;  // compute slow, copies hide
  const auto hidden = simulate(plan, t, CostModel(s, fast), {.policy = "lru", .admission = "all", .prefetch = "oracle"});
  EXPECT_GT(hidden.ready_hits, hidden.late_hits);
}

TEST(Simulator, NextLayerIsRefusedAndNamesTheOracle) {
  const ModelShape s = tiny_shape(2, 4, 1);
  const CostModel cost(s, tiny_hardware());
  const Trace t = random_trace(2, 4, 1, 10, 0.0, 5);
  try {
    simulate(cache_plan(s, 1), t, cost, {.policy = "lru", .prefetch = "next-layer"});
    FAIL() << "next-layer was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("oracle"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("trace"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(prefetch_is_oracle("oracle"));
  EXPECT_FALSE(prefetch_is_oracle("stats"));
}

}  // namespace
}  // namespace moe::placement

namespace moe::placement {
namespace {

// --miss cpu: a missed expert is computed on the host, never copied; the slower the host, the
// slower the token, and with no cache slots every offloaded use is a host computation.
TEST(Simulator, MissesComputedOnTheHostCopyNothing) {
  const ModelShape s = tiny_shape(4, 8, 2);
  const Trace trace = random_trace(4, 8, 2, 64, 1.0, 5);
  SimOptions cpu;
  cpu.miss = "cpu";
  HardwareProfile fast = tiny_hardware(), slow = tiny_hardware();
  slow.cpu_flops /= 10;
  slow.host_memory_bandwidth /= 10;
  const PlacementPlan plan = cache_plan(s, 0);
  const SimResult r = simulate(plan, trace, CostModel(s, fast), cpu);
  EXPECT_EQ(r.cpu_computed, r.offloaded_uses);
  EXPECT_GT(r.cpu_computed, 0);
  int64_t copied = 0;
  for (const int64_t b : r.bytes_host_to_gpu) copied += b;
  EXPECT_EQ(copied, 0);
  EXPECT_GT(r.cpu_seconds, 0);
  EXPECT_LT(simulate(plan, trace, CostModel(s, slow), cpu).tokens_per_second(), r.tokens_per_second());
  SimOptions unknown;
  unknown.miss = "skip";
  EXPECT_THROW(simulate(plan, trace, CostModel(s, fast), unknown), Error);
}

}  // namespace
}  // namespace moe::placement

namespace moe::placement {
namespace {

TEST(Simulator, WrongPrefetchesStopWhenTheirLayerShowsThemUnused) {
  // Copies slower than compute, a predictor learnt from routing with other favourites: most
  // guesses are wrong, and the link stops them when their layer's routing is known, as the
  // engine cancels them, so they move fewer bytes than whole copies would.
  const ModelShape s = tiny_shape(4, 8, 2);
  HardwareProfile hw = tiny_hardware();
  hw.host_to_device_bandwidth = 1e9;
  const CostModel cost(s, hw);
  const Trace t = random_trace(4, 8, 2, 120, 1.2, 21);
  const Trace other = random_trace(4, 8, 2, 120, 1.2, 22);
  const PlacementPlan plan = cache_plan(s, 8);
  const auto r = simulate(plan, t, cost, {.policy = "lru", .admission = "all", .prefetch = "popularity:2", .profile = &other});
  ASSERT_GT(r.prefetches, 0);
  EXPECT_LT(r.prefetch_precision(), 0.6);
  EXPECT_GT(r.prefetches_cancelled, 0);
  EXPECT_LE(r.prefetches_cancelled + r.prefetches_used, r.prefetches);
  const int64_t expert = s.expert_bytes(ExpertFormat::kBF16);
  EXPECT_LT(r.bytes_host_to_gpu[0], (r.misses() + r.prefetches) * expert);  // stopped copies moved less
  EXPECT_GE(r.bytes_host_to_gpu[0], (r.misses() + r.prefetches - r.prefetches_cancelled) * expert);
  EXPECT_GE(r.seconds, double(r.bytes_host_to_gpu[0]) / hw.host_to_device_bandwidth * 0.999);
  EXPECT_EQ(r.ready_hits + r.late_hits + r.misses(), r.offloaded_uses);
  // More guesses a token copy more experts and find more of those used.
  const auto wide = simulate(plan, t, cost, {.policy = "lru", .admission = "all", .prefetch = "popularity:2", .guesses = 4,
                                             .profile = &other});
  EXPECT_GT(wide.prefetches, r.prefetches);
  EXPECT_GE(wide.prefetch_recall(), r.prefetch_recall());
  EXPECT_THROW(simulate(plan, t, cost, {.prefetch = "popularity", .guesses = 9, .profile = &other}), Error);
  // Without a prefetcher nothing is cancelled.
  EXPECT_EQ(simulate(plan, t, cost, {.policy = "lru", .admission = "all"}).prefetches_cancelled, 0);
}

}  // namespace
}  // namespace moe::placement
