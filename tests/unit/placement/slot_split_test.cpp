#include "placement/plan/slot_split.h"

#include <gtest/gtest.h>

#include "runtime/core/error.h"
#include "tests/unit/placement/tiny_shape.h"

namespace moe::placement {
namespace {

ModelShape shape(int layers, int experts) { return testing::tiny_shape(layers, experts, 1); }

// `sequences` of `tokens` each over 4 layers x 8 experts, top-1: each token uses hot(sequence)
// in every layer except every third token, which uses one of experts 1..7 in turn.
Trace routing(int sequences, int tokens, int (*hot)(int sequence)) {
  Trace t;
  t.model = {"tiny", 4, 8, 1};
  int cold = 0;
  for (int s = 0; s < sequences; ++s)
    for (int p = 0; p < tokens; ++p) {
      TokenRecord r{s, p, {}};
      for (int l = 0; l < 4; ++l) {
        const int e = p % 3 == 2 ? 1 + (cold++ % 7) : hot(s);
        r.layers.push_back({l, {e}, {1.0f}, {}});
      }
      t.tokens.push_back(r);
    }
  return t;
}

SimOptions lru() {
  SimOptions o;
  o.policy = "lru";
  o.admission = "frequency";
  return o;
}

TEST(SlotSplit, PinsTheHotExpertsWhenTheyStayHot) {
  const SlotSplit split = choose_slot_split(shape(4, 8), routing(4, 30, [](int) { return 0; }), 1, 4, lru());
  EXPECT_EQ(split.pinned_per_device, 4);  // pinned from the first token on: no warm-up misses
  int pinned = 0;
  for (const auto& e : split.plan.experts())
    if (e.home() == proto::TIER_GPU) {
      EXPECT_EQ(e.expert(), 0) << "layer " << e.layer();
      ++pinned;
    }
  EXPECT_EQ(pinned, 4);
  EXPECT_EQ(split.plan.devices(0).cache_slots(), 0);
  EXPECT_GT(split.held_out_hit_rate, 0.6);
  EXPECT_EQ(split.why.size(), 6u);  // five shares tried (0, 1, 2, 3, 4 pinned) and the choice
}

TEST(SlotSplit, KeepsACacheWhenTheHeldOutRoutingMovesElsewhere) {
  // The first half of the sequences (what ranks the experts) is hot on expert 0, the held-out
  // half on expert 5: pins of expert 0 would miss every held-out use, a cache follows.
  const SlotSplit split =
      choose_slot_split(shape(4, 8), routing(4, 30, [](int s) { return s < 2 ? 0 : 5; }), 1, 4, lru());
  EXPECT_EQ(split.pinned_per_device, 0);
  EXPECT_EQ(split.plan.devices(0).cache_slots(), 4);
  for (const auto& e : split.plan.experts()) EXPECT_NE(e.home(), proto::TIER_GPU);
}

TEST(SlotSplit, RefusesATraceOfAnotherShape) {
  EXPECT_THROW(choose_slot_split(shape(6, 8), routing(2, 10, [](int) { return 0; }), 1, 4, lru()), Error);
}

}  // namespace
}  // namespace moe::placement
