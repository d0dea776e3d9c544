// The device arena's bookkeeping against a byte map of who owns what: random allocations and
// releases never overlap, stay aligned and inside the capacity, fail only when no free range
// holds the request, and merge back into one range once everything is released.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/core/range_allocator.h"

namespace moe {
namespace {

TEST(RangeAllocator, RandomUseAgainstAnOwnershipMap) {
  constexpr uint64_t kUnit = 64, kUnits = 400;
  RangeAllocator a(kUnits * kUnit + 10, kUnit);  // the tail short of a unit is dropped
  EXPECT_EQ(a.capacity(), kUnits * kUnit);
  std::vector<int> owner(kUnits, -1);  // per unit: the live allocation holding it
  std::vector<std::pair<uint64_t, uint64_t>> live;  // (offset, units)
  std::mt19937 rng(5);
  int failures = 0;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 5 < 3) {
      const uint64_t bytes = rng() % (12 * kUnit);
      const uint64_t units = std::max<uint64_t>(1, (bytes + kUnit - 1) / kUnit);
      const auto offset = a.allocate(bytes);
      // The map's own view: is there a run of `units` free units anywhere?
      uint64_t run = 0, best = 0;
      for (uint64_t u = 0; u < kUnits; ++u) best = std::max(best, run = owner[u] < 0 ? run + 1 : 0);
      if (!offset) {
        EXPECT_LT(best, units) << "refused although a free range held it";
        EXPECT_EQ(a.largest_free(), best * kUnit);
        ++failures;
        continue;
      }
      ASSERT_EQ(*offset % kUnit, 0u);
      ASSERT_LE(*offset + units * kUnit, a.capacity());
      for (uint64_t u = *offset / kUnit; u < *offset / kUnit + units; ++u) {
        ASSERT_EQ(owner[u], -1) << "overlaps a live allocation";
        owner[u] = step;
      }
      live.emplace_back(*offset, units);
    } else {
      const size_t i = rng() % live.size();
      a.release(live[i].first);
      for (uint64_t u = live[i].first / kUnit; u < live[i].first / kUnit + live[i].second; ++u) owner[u] = -1;
      live.erase(live.begin() + std::ptrdiff_t(i));
    }
    uint64_t used = 0;
    for (const auto& [offset, units] : live) used += units * kUnit;
    ASSERT_EQ(a.used(), used);
  }
  EXPECT_GT(failures, 0) << "the test never filled the range";
  for (const auto& [offset, units] : live) a.release(offset);
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.largest_free(), a.capacity());  // every neighbour merged back
}

TEST(RangeAllocator, RefusesWhatItCannotHoldAndUnknownReleases) {
  RangeAllocator a(1024, 256);
  EXPECT_FALSE(a.allocate(2048));
  const auto first = a.allocate(0);  // still one unit, distinct from the next
  const auto second = a.allocate(1);
  ASSERT_TRUE(first && second);
  EXPECT_NE(*first, *second);
  EXPECT_THROW(a.release(*first + 1), Error);
  a.release(*first);
  EXPECT_THROW(a.release(*first), Error);  // twice
  EXPECT_THROW(RangeAllocator(1024, 100), Error);
  EXPECT_FALSE(RangeAllocator(100, 256).allocate(1));  // no whole unit
}

}  // namespace
}  // namespace moe
