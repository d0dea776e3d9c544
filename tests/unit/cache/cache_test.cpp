// The expert cache and host pool: each policy's eviction order on hand-made sequences, pins
// never evicted, exact counters, pin safety under concurrency, and the pool's budget.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "offload/cache/expert_cache.h"
#include "offload/cache/host_pool.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

constexpr uint64_t kSlot = 64;

struct Fixture {
  explicit Fixture(int slots, std::unique_ptr<EvictionPolicy> policy, std::unique_ptr<AdmissionFilter> admission = nullptr)
      : memory(size_t(slots) * kSlot), cache(memory.data(), kSlot, slots, std::move(policy), std::move(admission)) {}
  // Brings `key` in (a miss then a fill) or touches it (a hit).
  void use(ExpertKey key) {
    if (auto h = cache.acquire(key)) return;
    std::byte* slot = cache.reserve(key);
    ASSERT_NE(slot, nullptr);
    cache.publish(key, kSlot);
  }
  // As use(), but a miss the admission filter refuses streams past the cache; true on a hit.
  bool use_or_stream(ExpertKey key) {
    if (auto h = cache.acquire(key)) return true;
    if (std::byte* slot = cache.reserve(key)) cache.publish(key, kSlot);
    return false;
  }
  std::vector<ExpertKey> resident(int layers, int experts) const {
    std::vector<ExpertKey> out;
    for (int l = 0; l < layers; ++l)
      for (int e = 0; e < experts; ++e)
        if (cache.state({l, e}) == ExpertCache::State::kResident) out.push_back({l, e});
    return out;
  }
  std::vector<std::byte> memory;
  ExpertCache cache;
};

ExpertKey k(int e, int l = 0) { return {l, e}; }

TEST(ExpertCache, LruEvictsTheLeastRecentlyUsed) {
  Fixture f(3, make_lru_policy());
  for (int e : {0, 1, 2, 0, 3}) f.use(k(e));  // 1 is the least recent when 3 arrives
  EXPECT_EQ(f.resident(1, 4), (std::vector<ExpertKey>{k(0), k(2), k(3)}));
  const CacheCounters c = f.cache.counters();
  EXPECT_EQ(c.hits, 1u);
  EXPECT_EQ(c.misses, 4u);
  EXPECT_EQ(c.evictions, 1u);
  EXPECT_EQ(c.bytes_filled, 4 * kSlot);
}

TEST(ExpertCache, LfuEvictsTheLeastFrequentlyUsed) {
  Fixture f(3, make_lfu_policy());
  for (int e : {0, 0, 0, 1, 1, 2, 3}) f.use(k(e));  // 2 has one use, oldest among the rarest
  EXPECT_EQ(f.resident(1, 4), (std::vector<ExpertKey>{k(0), k(1), k(3)}));
  f.use(k(4));  // 3 (one use) goes before 1 (two)
  EXPECT_EQ(f.resident(1, 5), (std::vector<ExpertKey>{k(0), k(1), k(4)}));
}

TEST(ExpertCache, PlanPinnedExpertsStayForever) {
  Fixture f(2, make_plan_pinned_policy({k(0)}));
  for (int e : {0, 1, 2, 3, 4}) f.use(k(e));
  EXPECT_EQ(f.resident(1, 5), (std::vector<ExpertKey>{k(0), k(4)}));
}

TEST(ExpertCache, MultiMetricKeepsTheNextLayersExperts) {
  MultiMetricWeights w;
  w.recency = 0;
  w.frequency = 0;
  w.precision = 0;
  w.layer_distance = 1;
  w.num_layers = 4;
  Fixture f(2, make_multi_metric_policy(w));
  f.use(k(0, 1));
  f.use(k(0, 3));
  f.cache.set_current_layer(3);  // layer 3 is now; layer 1 is two layers away, 3 is here
  f.use(k(1, 2));                // evicts layer 1's expert
  EXPECT_EQ(f.cache.state(k(0, 1)), ExpertCache::State::kAbsent);
  EXPECT_EQ(f.cache.state(k(0, 3)), ExpertCache::State::kResident);
}

TEST(ExpertCache, MultiMetricPrefersToKeepHighPrecision) {
  MultiMetricWeights w;
  w.recency = 0;
  w.frequency = 0;
  w.layer_distance = 0;
  w.precision = 1;
  Fixture f(2, make_multi_metric_policy(w));
  ASSERT_NE(f.cache.reserve(k(0), /*high_precision=*/true), nullptr);
  f.cache.publish(k(0), kSlot);
  ASSERT_NE(f.cache.reserve(k(1), /*high_precision=*/false), nullptr);
  f.cache.publish(k(1), kSlot);
  f.use(k(2));
  EXPECT_EQ(f.cache.state(k(1)), ExpertCache::State::kAbsent);
}

TEST(ExpertCache, PinnedExpertsAreNeverEvicted) {
  Fixture f(2, make_lru_policy());
  f.use(k(0));
  f.use(k(1));
  auto a = f.cache.acquire(k(0));
  auto b = f.cache.acquire(k(1));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(f.cache.reserve(k(2)), nullptr);  // all pinned: no slot, no deadlock
  b->release();
  EXPECT_NE(f.cache.reserve(k(2)), nullptr);  // 1 goes, 0 stays pinned
  EXPECT_EQ(f.cache.state(k(0)), ExpertCache::State::kResident);
  EXPECT_EQ(f.cache.state(k(1)), ExpertCache::State::kAbsent);
  EXPECT_EQ(f.cache.state(k(2)), ExpertCache::State::kFilling);
}

TEST(ExpertCache, AbandonedFillsFreeTheirSlotAndWakeWaiters) {
  Fixture f(1, make_lru_policy());
  ASSERT_NE(f.cache.reserve(k(0)), nullptr);
  EXPECT_EQ(f.cache.reserve(k(0)), nullptr);  // already filling
  std::optional<CacheHandle> seen;
  std::thread waiter([&] { seen = f.cache.wait(k(0)); });
  f.cache.abandon(k(0));
  waiter.join();
  EXPECT_FALSE(seen.has_value());
  EXPECT_NE(f.cache.reserve(k(1)), nullptr);
  std::thread waiter2([&] { seen = f.cache.wait(k(1)); });
  f.cache.publish(k(1), 10);
  waiter2.join();
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->key(), k(1));
  EXPECT_EQ(f.cache.counters().abandoned, 1u);
}

TEST(ExpertCache, PinsHoldUnderConcurrentUse) {
  Fixture f(4, make_lru_policy());
  std::atomic<bool> broken{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      for (int i = 0; i < 3000; ++i) {
        const ExpertKey key = k(int(rng() % 10));
        if (auto h = f.cache.acquire(key)) {
          // While pinned, the slot must keep this expert's stamp.
          if (std::to_integer<int>(h->data()[0]) != key.expert) broken = true;
          std::this_thread::yield();
          if (std::to_integer<int>(h->data()[0]) != key.expert) broken = true;
          continue;
        }
        if (std::byte* slot = f.cache.reserve(key)) {
          slot[0] = std::byte(key.expert);
          f.cache.publish(key, 1);
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_FALSE(broken);
  const CacheCounters c = f.cache.counters();
  EXPECT_EQ(c.hits + c.misses, 4u * 3000u);
  EXPECT_LE(f.cache.resident_count(), 4);
}

// Six experts used in turn through three slots: LRU evicts each one just before its next use
// and never hits; with frequency admission the first three stay and hit on every round.
TEST(ExpertCache, FrequencyAdmissionStopsCyclingBelowTheWorkingSet) {
  for (const bool admission : {false, true}) {
    Fixture f(3, make_lru_policy(), admission ? make_admission("frequency", 6) : nullptr);
    int hits = 0;
    for (int round = 0; round < 20; ++round)
      for (int e = 0; e < 6; ++e) hits += f.use_or_stream(k(e));
    if (admission) {
      EXPECT_EQ(hits, 19 * 3);
      EXPECT_EQ(f.resident(1, 6), (std::vector<ExpertKey>{k(0), k(1), k(2)}));
      EXPECT_EQ(f.cache.counters().not_admitted, 20u * 3u);
    } else {
      EXPECT_EQ(hits, 0);
      EXPECT_EQ(f.cache.counters().not_admitted, 0u);
    }
  }
}

// An expert that becomes popular displaces a cached one that is no longer used: aging halves
// the old counts, and a newcomer wins once it has been used more often than the victim.
TEST(ExpertCache, FrequencyAdmissionFollowsDriftingRouting) {
  Fixture f(2, make_lru_policy(), make_admission("frequency", 4));  // counts halve every 40 uses
  for (int i = 0; i < 30; ++i) f.use_or_stream(k(i % 2));  // 0 and 1 are hot
  EXPECT_EQ(f.resident(1, 4), (std::vector<ExpertKey>{k(0), k(1)}));
  for (int i = 0; i < 60; ++i) f.use_or_stream(k(2 + i % 2));  // now 2 and 3 are
  EXPECT_EQ(f.resident(1, 4), (std::vector<ExpertKey>{k(2), k(3)}));
  EXPECT_TRUE(f.use_or_stream(k(2)));
}

TEST(FrequencyAdmission, CountsUsesAndHalvesThemEveryWindow) {
  FrequencyAdmission filter(8);
  for (int i = 0; i < 5; ++i) filter.record(k(0));
  filter.record(k(1));
  EXPECT_EQ(filter.count(k(0)), 5u);
  EXPECT_TRUE(filter.admit(k(0), k(1)));
  EXPECT_FALSE(filter.admit(k(1), k(0)));
  EXPECT_FALSE(filter.admit(k(1), k(1)));  // ties keep the resident expert
  filter.record(k(1));
  filter.record(k(2));  // the eighth use: 5, 2, 1 become 2, 1, 0
  EXPECT_EQ(filter.count(k(0)), 2u);
  EXPECT_EQ(filter.count(k(1)), 1u);
  EXPECT_EQ(filter.count(k(2)), 0u);
  EXPECT_EQ(make_admission("all", 4), nullptr);
  EXPECT_THROW(make_admission("sometimes", 4), Error);
}

TEST(ExpertCache, RejectsImpossibleConfigurations) {
  std::byte b[8];
  EXPECT_THROW(ExpertCache(b, 8, 0, make_lru_policy()), Error);
  EXPECT_THROW(ExpertCache(b, 8, 1, nullptr), Error);
  EXPECT_THROW(make_policy("fifo"), Error);
}

TEST(HostPool, StaysWithinItsBudgetAndCoalesces) {
  HostPool pool(64 * 1024, /*try_pinned=*/false);
  std::vector<HostBlock> blocks;
  while (auto b = pool.allocate(10000)) blocks.push_back(*b);  // 12 KiB each after rounding
  EXPECT_EQ(blocks.size(), 5u);
  EXPECT_LE(pool.used(), pool.budget());
  EXPECT_FALSE(pool.allocate(8192).has_value());
  for (const auto& b : blocks) EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 4096, 0u);
  for (const auto& b : blocks) pool.free(b);
  EXPECT_EQ(pool.used(), 0u);
  EXPECT_TRUE(pool.allocate(64 * 1024).has_value());  // freed runs merged back into one
  EXPECT_THROW(HostPool(0), Error);
}

}  // namespace
}  // namespace moe::offload
