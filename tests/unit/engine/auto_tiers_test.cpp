#include "runtime/engine/auto_tiers.h"

#include <gtest/gtest.h>

#include "runtime/core/error.h"

namespace moe::engine {
namespace {

constexpr uint64_t kMiB = uint64_t(1) << 20;

// A Mixtral-like shape: 32 layers of 8 experts of 5 MiB (top-2: a step uses 64, 320 MiB), 100 MiB
// of dense weights.
TierInputs mixtral_like(uint64_t limit) {
  TierInputs in;
  in.limit = limit;
  in.limit_source = "--mem-limit";
  in.limit_given = true;
  in.dense_bytes = 100 * kMiB;
  in.expert_bytes = 5 * kMiB;
  in.experts = 256;
  in.streamed_per_layer = 2;
  in.sparse_layers = 32;
  in.kv_bytes = 10 * kMiB;
  in.runtime_bytes = 70 * kMiB;
  return in;
}

TEST(AutoTiers, RunsInPlaceWhenTheModelFits) {
  const TierChoice c = choose_tiers(mixtral_like(180 * kMiB + 256 * 5 * kMiB));
  EXPECT_FALSE(c.offload);
  EXPECT_FALSE(c.read_ahead);  // all in memory: nothing to read ahead
  EXPECT_NE(c.why.back().find("fits"), std::string::npos);
}

TEST(AutoTiers, RunsInPlaceWhileThePageCacheHoldsOneStepsExperts) {
  // One byte short of the model, and half of it: both leave room for a step's 64 experts, which
  // the page cache keeps in place as well as slots would.
  for (const uint64_t experts_room : {256 * 5 * kMiB - 1, 128 * 5 * kMiB, 64 * 5 * kMiB}) {
    const TierChoice c = choose_tiers(mixtral_like(180 * kMiB + experts_room));
    EXPECT_FALSE(c.offload) << experts_room;
    EXPECT_TRUE(c.read_ahead);  // partly on disk: the chosen experts are read ahead
    EXPECT_NE(c.why[c.why.size() - 2].find("one step's experts"), std::string::npos) << c.why[c.why.size() - 2];
  }
}

TEST(AutoTiers, BelowOneStepsExpertsGivesTheCachesWhatIsLeft) {
  const TierInputs in = mixtral_like(180 * kMiB + 64 * 5 * kMiB - 1);
  const TierChoice c = choose_tiers(in);
  ASSERT_TRUE(c.offload);
  EXPECT_EQ(c.host_bytes, 0u);  // a CPU device's slots are host memory already
  // Everything the limit leaves after the dense part and two streaming buffers, whole experts only.
  EXPECT_EQ(c.device_bytes, (in.limit - 180 * kMiB - 2 * 5 * kMiB) / (5 * kMiB) * (5 * kMiB));
  EXPECT_EQ(c.device_bytes, 61 * 5 * kMiB);
  EXPECT_EQ(c.streaming_bytes, 2 * 5 * kMiB);
  EXPECT_LE(180 * kMiB + c.streaming_bytes + c.device_bytes, in.limit);
}

TEST(AutoTiers, SplitsTheExpertRoomOverDevices) {
  TierInputs in = mixtral_like(180 * kMiB + 10 * kMiB + 51 * 5 * kMiB);
  in.devices = 2;
  const TierChoice c = choose_tiers(in);
  ASSERT_TRUE(c.offload);
  EXPECT_EQ(c.device_bytes, 25 * 5 * kMiB);  // 51 experts of room: 25 per device
}

TEST(AutoTiers, RefusesAGivenLimitBelowTheDensePart) {
  try {
    choose_tiers(mixtral_like(150 * kMiB));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("150.00 MiB"), std::string::npos) << e.what();
  }
  TierInputs found = mixtral_like(150 * kMiB);
  found.limit_given = false;  // what the machine has: run anyway and let the kernel page
  const TierChoice c = choose_tiers(found);
  EXPECT_FALSE(c.offload);
}

TEST(AutoTiers, UnderCudaTheHostPoolTakesWhatTheLimitLeaves) {
  TierInputs in = mixtral_like(180 * kMiB + 40 * 5 * kMiB + 3 * kMiB);
  in.cuda = true;
  const TierChoice c = choose_tiers(in);
  EXPECT_TRUE(c.offload);
  EXPECT_EQ(c.host_bytes, 40 * 5 * kMiB);
  in.limit = uint64_t(1) << 40;
  EXPECT_EQ(choose_tiers(in).host_bytes, 256 * 5 * kMiB);  // never more than all the experts
}

TEST(AutoTiers, RuntimeEstimateGrowsWithTheStep) {
  EXPECT_GE(runtime_estimate(64 * kMiB, 1, 1024, 3584, 16, 128), 64 * kMiB);
  EXPECT_GT(runtime_estimate(0, 512, 1024, 3584, 16, 4096), runtime_estimate(0, 1, 1024, 3584, 16, 4096));
}

}  // namespace
}  // namespace moe::engine
