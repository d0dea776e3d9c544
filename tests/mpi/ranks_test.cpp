// Expert parallelism across processes (issue 22): under `mpirun -np R`, every rank computes its
// own devices' experts and the others' results arrive through MPI, and the logits (prefill of
// every position, then greedy decode) are bit-identical to one process driving all R x L
// devices, for every fixture family, at several expert budgets, with and without a prefetcher
// and a plan. Each rank runs the one-process reference itself, so nothing is compared through
// files. Launched by ctest under mpirun; run alone, every test skips.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "offload/executor/offloaded_experts.h"
#include "offload/executor/process_group.h"
#include "offload/mpi/mpi_process_group.h"
#include "runtime/core/error.h"
#include "runtime/model/model_loader.h"
#include "tests/unit/model/greedy_logits.h"

namespace moe::offload {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";
const std::vector<int32_t> kPrompt = {1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3};

std::vector<float> run(model::Transformer& t) { return moe::testing::prefill_and_greedy_logits(t, kPrompt, 5); }

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A plan pinning about half of each device's budget of experts (some replicated on a second
// device) and homing a third of the rest on the host; the same on every rank (a fixed seed).
placement::PlacementPlan half_pinned_plan(const loading::ModelConfig& c, int devices, int pin_per_device) {
  std::mt19937 rng(7);
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
      const int d = int(rng() % unsigned(devices)), other = (d + 1) % devices;
      if (rng() % 2 == 0 && pinned[size_t(d)] < pin_per_device) {
        x->set_home(placement::proto::TIER_GPU);
        x->add_devices(d);
        ++pinned[size_t(d)];
        if (other != d && pinned[size_t(other)] < pin_per_device && rng() % 2) {
          x->add_devices(other);
          ++pinned[size_t(other)];
        }
      } else {
        x->set_home(rng() % 3 == 0 ? placement::proto::TIER_HOST : placement::proto::TIER_NVME);
        x->add_devices(d);
      }
    }
  for (int d = 0; d < devices; ++d) p.add_devices()->set_device(d);
  return p;
}

struct Case {
  int local_devices;
  int slots;  // per device; 0: every expert fits
  std::string prefetch, miss = "wait";
  bool plan = false;
};

void expect_same_bits_across_ranks(const char* fixture, const std::vector<Case>& cases) {
  ProcessGroup* group = process_group();
  if (!group) GTEST_SKIP() << "needs mpirun -np 2 or more (ctest launches it so)";
  model::LoadedModel m = model::load_model(kFixtures / fixture);
  model::Transformer& t = *m.transformer;
  if (std::string_view(fixture) == "ds_moe") t.set_routing_mode(model::parse_routing_mode("threshold:1"));
  const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
  const int total = t.config().num_sparse_layers() * t.config().num_experts;
  for (const Case& c : cases) {
    OffloadOptions o;
    o.devices = group->size() * c.local_devices;
    o.device_bytes = c.slots > 0 ? uint64_t(c.slots) * expert + expert / 2 : uint64_t(1) << 40;
    o.host_bytes = uint64_t(total) * expert;
    o.miss = c.miss;
    placement::PlacementPlan plan;
    if (c.plan) {
      plan = half_pinned_plan(t.config(), o.devices, std::max(c.slots / 2, 1));
      o.plan = &plan;
    }
    SCOPED_TRACE(fmt::format("{}: {} ranks x {} devices, {} slots, prefetch {}, miss {}, plan {}", fixture, group->size(),
                             c.local_devices, c.slots, c.prefetch, c.miss, c.plan));
    std::vector<float> reference, got;
    {
      OffloadedExperts one_process(t, o, make_predictor(c.prefetch, t, nullptr));
      t.set_expert_runner(&one_process);
      reference = run(t);
      t.set_expert_runner(nullptr);
    }
    OffloadOptions ranked = o;
    ranked.ranks = group->make_communicator();
    ranked.local_devices = c.local_devices;
    OffloadedExperts runner(t, ranked, make_predictor(c.prefetch, t, nullptr));
    t.set_expert_runner(&runner);
    got = run(t);
    t.set_expert_runner(nullptr);
    EXPECT_TRUE(bit_equal(got, reference));
    const OffloadStats s = runner.stats();
    EXPECT_GT(s.rank_exchanges, 0u);
    EXPECT_EQ(s.uses, s.pinned_hits + s.offloaded_uses);
  }
}

const std::vector<Case> kCases = {
    {1, 0, "none"},                 // every expert fits
    {1, 1, "next-layer"},           // one slot per device, prefetching
    {2, 3, "next-layer"},           // two devices per rank, a small cache
    {1, 4, "stacked:2", "cpu"},     // misses computed on the host
    {1, 6, "next-layer", "wait", true},  // a plan with pinned, replicated and host-homed experts
};

class Ranks : public ::testing::TestWithParam<const char*> {};

std::string test_name(const ::testing::TestParamInfo<const char*>& fixture) {
  std::string name = fixture.param;
  for (char& ch : name)
    if (ch == '-') ch = '_';
  return name;
}

TEST_P(Ranks, SameBitsAsOneProcess) { expect_same_bits_across_ranks(GetParam(), kCases); }

INSTANTIATE_TEST_SUITE_P(Families, Ranks,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek", "deepseek_v3", "glm4_moe",
                                           "moe_plus_plus", "ds_moe", "bam-shared-kv"),
                         test_name);

// The plan's devices must be ranks x devices per rank: the executor refuses anything else.
TEST(RankLayout, ExecutorRefusesDevicesThatAreNotRanksTimesLocal) {
  ProcessGroup* group = process_group();
  if (!group) GTEST_SKIP() << "needs mpirun -np 2 or more (ctest launches it so)";
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  OffloadOptions o;
  o.devices = group->size() * 2 + 1;
  o.device_bytes = uint64_t(1) << 30;
  o.ranks = group->make_communicator();
  o.local_devices = 2;
  EXPECT_THROW(OffloadedExperts(*m.transformer, o), Error);
}

}  // namespace
}  // namespace moe::offload

int main(int argc, char** argv) {
  try {
    moe::offload::set_process_group(moe::offload::mpi::start_mpi_if_launched(&argc, &argv));
  } catch (const moe::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  if (auto* group = moe::offload::process_group()) group->set_timeout(30);
  ::testing::InitGoogleTest(&argc, argv);
  const int code = RUN_ALL_TESTS();
  moe::offload::set_process_group(nullptr);
  return code;
}
