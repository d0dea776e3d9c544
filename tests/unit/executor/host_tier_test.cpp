// The host tier under concurrency: copy threads of several devices and the executor read
// experts at once from a pool too small for them, with evictions, cancellations and slow
// consumers. Every completed copy must deliver the expert's exact bytes, a block being copied
// out must never be evicted or reused, and a cancelled copy must leave the tier usable.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "offload/executor/host_tier.h"
#include "runtime/model/model_loader.h"

namespace moe::offload {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";

TEST(HostTier, ConcurrentCopiesDeliverExactBytesWhileEvicting) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  const ExpertBacking backing(m.transformer->weights());
  const uint64_t bytes = backing.layout().bytes;
  const int layers = m.config.num_layers, experts = m.config.num_experts;
  std::vector<std::vector<std::byte>> want(size_t(layers * experts), std::vector<std::byte>(bytes));
  for (int l = 0; l < layers; ++l)
    for (int e = 0; e < experts; ++e) backing.read(ExpertKey{l, e}, want[size_t(l * experts + e)].data());

  HostTier tier(backing, 3 * bytes, bytes / 8 + 64);  // room for 3 experts; each copied in ~8 pieces
  std::atomic<int> wrong{0}, from_host{0}, cancelled{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      std::vector<std::byte> got(bytes);
      for (int i = 0; i < 150; ++i) {
        const int l = int(rng() % unsigned(layers)), e = int(rng() % 4);  // a hot subset: hits and evictions
        const ExpertKey key{l, e};
        std::atomic<bool> cancel{false};
        const bool to_host = rng() % 3 == 0;  // the executor's own reads land in host memory
        const bool slow = rng() % 4 == 0;
        const bool cancel_midway = rng() % 8 == 0;
        HostTier::Source source;
        if (to_host) {
          source = tier.copy_out(key, got.data());
        } else {
          source = tier.copy_out(
              key,
              [&](uint64_t offset, const std::byte* src, uint64_t n) {
                if (slow) std::this_thread::sleep_for(std::chrono::microseconds(100));
                std::memcpy(got.data() + offset, src, n);
                if (cancel_midway) cancel = true;  // stops before the next chunk
              },
              &cancel);
        }
        if (source == HostTier::Source::kCancelled) {
          ++cancelled;
          continue;
        }
        if (source == HostTier::Source::kHost) ++from_host;
        if (std::memcmp(got.data(), want[size_t(l * experts + e)].data(), bytes) != 0) ++wrong;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(from_host.load(), 0);
  // The tier still serves every expert exactly after all that.
  std::vector<std::byte> got(bytes);
  for (int l = 0; l < layers; ++l)
    for (int e = 0; e < experts; ++e) {
      tier.copy_out(ExpertKey{l, e}, got.data());
      ASSERT_EQ(std::memcmp(got.data(), want[size_t(l * experts + e)].data(), bytes), 0) << l << "/" << e;
    }
}

// A lease reads the expert where the pool holds it, and keeps it there: while two experts are
// leased in a pool of two, a third finds no room (an empty lease; copy_out reads it straight from
// the backing), and once a lease ends its expert can be evicted for the third.
TEST(HostTier, LeasesReadInPlaceAndKeepTheirExpertFromEviction) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  const ExpertBacking backing(m.transformer->weights());
  const uint64_t bytes = backing.layout().bytes;
  const auto expert = [&](ExpertKey key) {
    std::vector<std::byte> v(bytes);
    backing.read(key, v.data());
    return v;
  };
  HostTier tier(backing, 2 * ((bytes + 4095) / 4096 * 4096));  // the pool hands out whole pages
  HostTier::Source source = HostTier::Source::kHost;
  HostTier::Lease a = tier.borrow({0, 0}, &source);
  ASSERT_TRUE(a);
  EXPECT_EQ(source, HostTier::Source::kBacking);
  HostTier::Lease b = tier.borrow({0, 1});
  ASSERT_TRUE(b);
  EXPECT_EQ(std::memcmp(a.data(), expert({0, 0}).data(), bytes), 0);
  EXPECT_EQ(std::memcmp(b.data(), expert({0, 1}).data(), bytes), 0);
  EXPECT_FALSE(tier.borrow({0, 2}));  // both blocks leased: no room
  std::vector<std::byte> got(bytes);
  EXPECT_EQ(tier.copy_out({0, 2}, got.data()), HostTier::Source::kBacking);
  EXPECT_EQ(got, expert({0, 2}));

  HostTier::Lease again = tier.borrow({0, 0}, &source);  // a second lease of a held expert
  EXPECT_EQ(source, HostTier::Source::kHost);
  EXPECT_EQ(again.data(), a.data());
  a.reset();
  again = HostTier::Lease();
  HostTier::Lease c = tier.borrow({0, 2}, &source);  // {0, 0} is free to go now
  ASSERT_TRUE(c);
  EXPECT_EQ(source, HostTier::Source::kBacking);
  EXPECT_EQ(std::memcmp(c.data(), expert({0, 2}).data(), bytes), 0);
  EXPECT_EQ(std::memcmp(b.data(), expert({0, 1}).data(), bytes), 0);  // still held, untouched
  EXPECT_EQ(tier.copy_out({0, 0}, got.data()), HostTier::Source::kBacking);  // it was evicted
}

}  // namespace
}  // namespace moe::offload
