// Several nodes: profiles with a `nodes` section (and the refusal of malformed ones, by field),
// the simulator's all-to-all bytes and time per link against hand-computed figures, the plan's
// node fields and rank layouts (older plans and profiles unchanged), and the planner cutting
// inter-node bytes against the uniform plan on held-out routing.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "placement/hardware/hardware_profile.h"
#include "placement/plan/plan_nodes.h"
#include "placement/plan/planner.h"
#include "placement/sim/simulator.h"
#include "placement/trace/synthetic_trace.h"
#include "runtime/core/error.h"
#include "tests/unit/placement/tiny_shape.h"

namespace moe::placement {
namespace {

using testing::tiny_shape;
const std::filesystem::path kRoot(MOE_SOURCE_DIR);

const std::string kTwoNodes = R"(name: t
gpu: {model: x, count: 2, memory_gib: 8, memory_gb_per_s: 100, bf16_tflops: 10, host_link_gb_per_s: 10, source: s}
peers: {link: nvlink, gb_per_s: 100, source: s}
host: {memory_gib: 8, memory_gb_per_s: 10, cpu_cores: 2, cpu_gflops: 10, source: s}
nvme: {read_gb_per_s: 1, iops: 1000, source: s}
nodes: {count: 2, network: infiniband, nic_gb_per_s: 1, nics: 1, latency_us: 50, source: s}
)";

std::string replaced(const std::string& text, const std::string& from, const std::string& to) {
  std::string s = text;
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(MultiNodeProfiles, TheNodesSectionAndOlderProfiles) {
  const HardwareProfile p = parse_hardware_profile(kTwoNodes, "t.yaml");
  EXPECT_EQ(p.node_count, 2);
  EXPECT_EQ(p.gpu_count, 4);  // gpu.count is per node
  EXPECT_EQ(p.gpus_per_node(), 2);
  EXPECT_EQ(p.network, "infiniband");
  EXPECT_DOUBLE_EQ(p.nic_bandwidth, 1e9);
  EXPECT_EQ(p.nics, 1);
  EXPECT_DOUBLE_EQ(p.network_latency, 50e-6);
  EXPECT_EQ(p.sources.at("nodes"), "s");
  // Without `nics` every GPU has its own.
  EXPECT_EQ(parse_hardware_profile(replaced(kTwoNodes, "nics: 1, ", ""), "t.yaml").nics, 2);

  const HardwareProfile ib = load_hardware_profile("h100-sxm-80gb-x8-nvlink-2nodes-ib400");
  EXPECT_EQ(ib.gpu_count, 16);
  EXPECT_EQ(ib.gpus_per_node(), 8);
  EXPECT_EQ(ib.nics, 8);
  EXPECT_EQ(ib.peer_link, PeerLink::kNvlink);
  EXPECT_DOUBLE_EQ(ib.peer_bandwidth, 450e9);         // from its base, per node
  EXPECT_DOUBLE_EQ(ib.host_memory_bytes, 1024.0 * (1 << 30));  // each node's
  EXPECT_LT(ib.nic_bandwidth, ib.peer_bandwidth);

  // Every profile without the section is one node, as before.
  for (const auto& entry : std::filesystem::directory_iterator(kRoot / "configs" / "hardware")) {
    const HardwareProfile h = load_hardware_profile(entry.path().string());
    if (h.sources.count("nodes")) continue;
    EXPECT_EQ(h.node_count, 1) << h.name;
    EXPECT_EQ(h.gpus_per_node(), h.gpu_count) << h.name;
    EXPECT_EQ(h.nic_bandwidth, 0) << h.name;
  }
  const HardwareProfile x8 = load_hardware_profile("h100-sxm-80gb-x8-nvlink");
  EXPECT_EQ(x8.gpu_count, 8);
  EXPECT_EQ(x8.node_count, 1);
}

TEST(MultiNodeProfiles, MalformedNodesAreRefusedInOneLineNamingTheField) {
  const auto refused = [](const std::string& text, const std::string& field) {
    try {
      parse_hardware_profile(text, "bad.yaml");
      ADD_FAILURE() << "accepted, expected a complaint about " << field;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kCorrupt) << what;
      EXPECT_NE(what.find(field), std::string::npos) << what;
      EXPECT_NE(what.find("bad.yaml"), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  };
  refused(replaced(kTwoNodes, "count: 2, network", "count: 0, network"), "nodes.count");
  refused(replaced(kTwoNodes, "count: 2, network", "count: 1.5, network"), "nodes.count");
  refused(replaced(kTwoNodes, "count: 2, network", "count: two, network"), "nodes.count");
  refused(replaced(kTwoNodes, "count: 2, network", "count: 100000, network"), "nodes.count");
  refused(replaced(kTwoNodes, "infiniband", "smoke-signals"), "nodes.network");
  refused(replaced(kTwoNodes, "network: infiniband, ", ""), "nodes.network");
  refused(replaced(kTwoNodes, "nic_gb_per_s: 1, ", ""), "nodes.nic_gb_per_s");
  refused(replaced(kTwoNodes, "nic_gb_per_s: 1", "nic_gb_per_s: -1"), "nodes.nic_gb_per_s");
  refused(replaced(kTwoNodes, "nic_gb_per_s: 1", "nic_gb_per_s: .nan"), "nodes.nic_gb_per_s");
  refused(replaced(kTwoNodes, "nics: 1", "nics: 3"), "nodes.nics");
  refused(replaced(kTwoNodes, "nics: 1", "nics: 0"), "nodes.nics");
  refused(replaced(kTwoNodes, "latency_us: 50", "latency_us: -5"), "nodes.latency_us");
  refused(replaced(kTwoNodes, "latency_us: 50", "latency_usec: 50"), "nodes.latency_usec");
  refused(replaced(kTwoNodes, "latency_us: 50, source: s}", "latency_us: 50}"), "`nodes`");
  refused(replaced(kTwoNodes, "latency_us: 50, source: s}", "latency_us: 50, sourc: s}"), "nodes.sourc is not a field");
  refused(replaced(kTwoNodes, "nodes: {count: 2, network: infiniband, nic_gb_per_s: 1, nics: 1, latency_us: 50, source: s}", "nodes: 2"),
          "`nodes`");
  refused(replaced(kTwoNodes, "name: t", "name: t\nbase: {a: 1}"), "base");
  refused(replaced(kTwoNodes, "{count: 2,", "{[1, 2]: 3, count: 2,"), "bad.yaml");
}

// Mutated profiles are refused with moe::Error or read; never another exception or a crash.
TEST(MultiNodeProfiles, HostileTextNeverEscapesAsAnotherError) {
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]:,-'\"&*!|>%@`#\n\t 0123456789.eE+naninf";
  int refused = 0, read = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<char> bytes(kTwoNodes.begin(), kTwoNodes.end());
    for (int edits = 1 + int(rng() % 4); edits > 0; --edits) {
      const auto at = bytes.begin() + std::ptrdiff_t(rng() % bytes.size());
      switch (rng() % 3) {
        case 0: *at = alphabet[rng() % alphabet.size()]; break;
        case 1: bytes.insert(at, alphabet[rng() % alphabet.size()]); break;
        default: bytes.erase(at, at + std::min<std::ptrdiff_t>(bytes.end() - at, 1 + std::ptrdiff_t(rng() % 8))); break;
      }
      if (bytes.empty()) bytes.push_back('{');
    }
    const std::string text(bytes.begin(), bytes.end());
    try {
      const HardwareProfile p = parse_hardware_profile(text, "hostile.yaml");
      EXPECT_GE(p.node_count, 1);
      EXPECT_EQ(p.gpu_count % p.node_count, 0);
      ++read;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "escaped: " << e.what() << "\n" << text;
    }
  }
  EXPECT_GT(refused, 1000);
  EXPECT_GT(read, 10);
}

HardwareProfile two_by_two(int nics) {
  HardwareProfile h = parse_hardware_profile(kTwoNodes, "t.yaml");
  h.nics = nics;
  h.peer_bandwidth = 1e11;
  return h;
}

// One MoE layer of 4 experts, expert e pinned on GPU e (and `extra` copies), 4 GPUs.
PlacementPlan pinned_plan(const ModelShape& s, int nodes, const std::vector<std::pair<int, int>>& extra = {}) {
  PlacementPlan p;
  p.set_model_name(s.name);
  p.set_batch(4);
  p.set_context(16);
  p.set_num_layers(1);
  p.set_num_experts(4);
  p.set_expert_bytes_bf16(s.expert_bytes(ExpertFormat::kBF16));
  if (nodes > 0) {
    p.set_nodes(nodes);
    p.set_devices_per_node(4 / nodes);
  }
  std::vector<int64_t> pinned(4, 0);
  for (int e = 0; e < 4; ++e) {
    auto* x = p.add_experts();
    x->set_expert(e);
    x->set_home(proto::TIER_GPU);
    x->add_devices(e);
    pinned[size_t(e)] += p.expert_bytes_bf16();
    for (const auto& [expert, device] : extra)
      if (expert == e) x->add_devices(device), pinned[size_t(device)] += p.expert_bytes_bf16();
  }
  for (int d = 0; d < 4; ++d) {
    auto* dev = p.add_devices();
    dev->set_device(d);
    dev->set_node(nodes > 0 ? d / (4 / nodes) : 0);
    dev->set_memory_bytes(int64_t(1) << 40);
    dev->set_pinned_expert_bytes(pinned[size_t(d)]);
  }
  validate_plan(p, "test plan");
  return p;
}

// One step of 4 tokens: token j lives on GPU j.
Trace four_tokens() {
  Trace t;
  t.model = {"tiny", 1, 4, 2};
  const std::vector<std::vector<int32_t>> chosen = {{0, 3}, {2, 3}, {0, 3}, {1, 3}};
  for (int j = 0; j < 4; ++j) t.tokens.push_back({0, j, {{0, chosen[size_t(j)], {}, {}}}});
  return t;
}

TEST(SimLinks, AllToAllBytesAndTimeByLinkAsComputedByHand) {
  const ModelShape s = tiny_shape(1, 4, 2);
  const double row = 2.0 * 1024;  // a bf16 hidden row
  // GPUs 0, 1 on node 0 and 2, 3 on node 1. Rows that leave their GPU, dispatch:
  //   token 0 (GPU 0): expert 3 -> GPU 3, across;  token 1 (GPU 1): experts 2, 3, across;
  //   token 2 (GPU 2): expert 0 across, expert 3 inside node 1;  token 3 (GPU 3): expert 1 across.
  // Inside: 1 row; across: 5 rows. The busiest GPU on the network moves 2 rows (GPU 1 sends 2,
  // GPU 3 receives 2); the busiest node 3 (node 0 sends 3, node 1 receives 3).
  for (const int nics : {1, 2}) {
    const CostModel cost(s, two_by_two(nics));
    const SimResult r = simulate(pinned_plan(s, 2), four_tokens(), cost, {});
    EXPECT_DOUBLE_EQ(r.bytes_intra_node, 2 * 1 * row);  // dispatch and combine
    EXPECT_DOUBLE_EQ(r.bytes_inter_node, 2 * 5 * row);
    EXPECT_DOUBLE_EQ(r.bytes_peer, 2 * 6 * row);
    const double inter = 50e-6 + (nics == 1 ? 3 * row / 1e9 : 2 * row / 1e9);  // one NIC a node: the node binds
    const double intra = CostModel::kCollectiveLatency + row / 1e11;
    EXPECT_NEAR(r.inter_node_seconds, 2 * inter, 1e-15) << nics;
    EXPECT_NEAR(r.intra_node_seconds, 2 * intra, 1e-15);
    EXPECT_NEAR(r.communication_seconds, 2 * std::max(inter, intra), 1e-15);
  }
  // The same placement on one node of 4 GPUs: every row stays inside.
  HardwareProfile one = two_by_two(2);
  one.node_count = 1;
  const SimResult flat = simulate(pinned_plan(s, 0), four_tokens(), CostModel(s, one), {});
  EXPECT_DOUBLE_EQ(flat.bytes_intra_node, 2 * 6 * row);
  EXPECT_DOUBLE_EQ(flat.bytes_inter_node, 0);
  EXPECT_DOUBLE_EQ(flat.inter_node_seconds, 0);
  // Expert 3 copied to GPU 1 (node 0): node 0's tokens use that copy, node 1's GPU 3's.
  // Dispatch: token 0 -> GPU 1 inside; token 1's expert 3 is local, its expert 2 across; token
  // 2: expert 0 across, expert 3 inside; token 3: expert 1 across. Inside 2 rows, across 3.
  const SimResult replicated = simulate(pinned_plan(s, 2, {{3, 1}}), four_tokens(), CostModel(s, two_by_two(1)), {});
  EXPECT_DOUBLE_EQ(replicated.bytes_intra_node, 2 * 2 * row);
  EXPECT_DOUBLE_EQ(replicated.bytes_inter_node, 2 * 3 * row);
  EXPECT_EQ(replicated.pinned_hits, 4);
}

// The engine's exchange across ranks today: every GPU holds every row (the dense part runs on
// every rank) and sends each result it computed to every other GPU, in one phase.
TEST(SimLinks, ResultsToAllSendsEveryResultToEveryOtherGpu) {
  const ModelShape s = tiny_shape(1, 4, 2);
  const double row = 2.0 * 1024;
  // Results computed: GPU 0 two (expert 0: tokens 0, 2), GPU 1 one, GPU 2 one, GPU 3 four
  // (expert 3: every token). Each goes to the node's other GPU and to both GPUs of the other
  // node: inside 2 + 1 + 1 + 4 = 8 rows, across twice that. The busiest node sends 10 rows
  // (node 1: GPU 2's 2 and GPU 3's 8), the busiest GPU 8 (GPU 3); inside, GPU 3 sends 4.
  SimOptions o;
  o.exchange = "results-to-all";
  const SimResult r = simulate(pinned_plan(s, 2), four_tokens(), CostModel(s, two_by_two(1)), o);
  EXPECT_DOUBLE_EQ(r.bytes_intra_node, 8 * row);
  EXPECT_DOUBLE_EQ(r.bytes_inter_node, 16 * row);
  const double inter = 50e-6 + 10 * row / 1e9, intra = CostModel::kCollectiveLatency + 4 * row / 1e11;
  EXPECT_NEAR(r.inter_node_seconds, inter, 1e-15);
  EXPECT_NEAR(r.intra_node_seconds, intra, 1e-15);
  EXPECT_NEAR(r.communication_seconds, std::max(inter, intra), 1e-15);
  // A copy of expert 3 on node 0 moves no row off the network in this exchange: its results
  // still go everywhere (more of them computed on GPU 1 instead of GPU 3).
  const SimResult copied = simulate(pinned_plan(s, 2, {{3, 1}}), four_tokens(), CostModel(s, two_by_two(1)), o);
  EXPECT_DOUBLE_EQ(copied.bytes_inter_node, 16 * row);
  o.exchange = "broadcast";
  EXPECT_THROW(simulate(pinned_plan(s, 2), four_tokens(), CostModel(s, two_by_two(1)), o), Error);
}

TEST(SimLinks, PlansAndProfilesOfOtherNodeShapesAreRefused) {
  const ModelShape s = tiny_shape(1, 4, 2);
  HardwareProfile one = two_by_two(1);
  one.node_count = 1;
  try {
    simulate(pinned_plan(s, 2), four_tokens(), CostModel(s, one), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("spans 2 nodes"), std::string::npos) << e.what();
  }
  try {  // four GPUs on one node, where the profile's nodes have two
    simulate(pinned_plan(s, 0), four_tokens(), CostModel(s, two_by_two(1)), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("puts 4 GPUs on a node"), std::string::npos) << e.what();
  }
}

TEST(PlanNodes, FieldsRankLayoutsAndOlderPlans) {
  const ModelShape s = tiny_shape(1, 4, 2);
  const PlacementPlan two = pinned_plan(s, 2), flat = pinned_plan(s, 0);
  EXPECT_EQ(plan_node_count(two), 2);
  EXPECT_EQ(plan_devices_per_node(two), 2);
  EXPECT_EQ(plan_node_of(two, 3), 1);
  EXPECT_EQ(plan_node_count(flat), 1);
  EXPECT_EQ(plan_devices_per_node(flat), 4);
  EXPECT_EQ(plan_rank_nodes(two, 4, 1), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_EQ(plan_rank_nodes(two, 2, 2), (std::vector<int>{0, 1}));
  EXPECT_EQ(plan_rank_nodes(flat, 1, 4), (std::vector<int>{0}));
  EXPECT_EQ(plan_rank_nodes(flat, 4, 1), (std::vector<int>{0, 0, 0, 0}));
  EXPECT_THROW(plan_rank_nodes(two, 1, 4), Error);  // one rank across both nodes
  EXPECT_THROW(plan_rank_nodes(two, 3, 1), Error);  // ranks that miss a device
  EXPECT_THROW(plan_rank_nodes(two, 0, 4), Error);

  const auto rejects = [](PlacementPlan p, const std::string& needle) {
    try {
      validate_plan(p, "broken");
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  PlacementPlan p = two;
  p.mutable_devices(2)->set_node(0);
  rejects(p, "device 2 claims node 0");
  p = two;
  p.set_devices_per_node(3);
  rejects(p, "2 nodes of 3 devices");
  p = two;
  p.set_devices_per_node(0);
  rejects(p, "2 nodes of 0 devices");
  p = flat;
  p.mutable_devices(1)->set_node(1);  // an old-style plan is one node
  rejects(p, "device 1 claims node 1");

  // Plan files written before nodes existed: one node, and the simulator reads them as it did.
  for (const char* name : {"mixtral-2gpu-v1.plan", "mixtral-2gpu-v2.plan"}) {
    const PlacementPlan old = load_plan(kRoot / "tests" / "fuzz" / "plan_file" / "corpus" / name);
    EXPECT_EQ(old.nodes(), 0) << name;
    EXPECT_EQ(plan_node_count(old), 1);
    for (const auto& d : old.devices()) EXPECT_EQ(d.node(), 0);
    PlacementPlan explicit_one = old;
    explicit_one.set_nodes(1);
    explicit_one.set_devices_per_node(old.devices_size());
    EXPECT_NO_THROW(validate_plan(explicit_one, name));
    const ModelShape mixtral = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
    const CostModel cost(mixtral, load_hardware_profile("rtx4090-24gb-x2-pcie"));
    SyntheticRouting routing{"mixtral", 32, 8, 2, 2, 32, 1.0, 0.0, 3};
    const Trace trace = synthetic_trace(routing);
    const SimResult a = simulate(old, trace, cost, {}), b = simulate(explicit_one, trace, cost, {});
    EXPECT_DOUBLE_EQ(a.seconds, b.seconds) << name;
    EXPECT_DOUBLE_EQ(a.bytes_intra_node, b.bytes_intra_node);
    EXPECT_EQ(a.bytes_inter_node, 0);
    EXPECT_GT(a.bytes_intra_node, 0);
  }
}

// Two nodes of two GPUs and a slow network: the planner's copies of the hottest experts on both
// nodes cut the bytes that cross it, on routing it was not planned from, well below the uniform
// plan's: with room for about 1.5 copies of every expert, and with room for three quarters of one.
TEST(MultiNodePlanner, CutsInterNodeBytesAgainstUniformOnHeldOutRouting) {
  const ModelShape s = tiny_shape(4, 8, 2);
  HardwareProfile hw = two_by_two(1);
  hw.gpu_memory_bytes = 0.45e9;  // ~12 experts of 12.6 MB a GPU beside the workspace
  hw.nic_bandwidth = 0.5e9;
  hw.host_memory_bytes = 64e9;
  hw.host_to_device_bandwidth = 2e10;
  hw.gpu_memory_bandwidth = 1e12;
  hw.gpu_bf16_flops = 1e14;
  const Trace trace = synthetic_trace({"tiny", 4, 8, 2, 6, 64, 1.5, 0.0, 11});
  PlannerOptions o;
  o.batch = 8;
  o.context = 128;
  const PlacementPlan plan = make_plan(s, trace, hw, o);
  EXPECT_EQ(plan.nodes(), 2);
  EXPECT_EQ(plan.devices_per_node(), 2);
  for (const auto& d : plan.devices()) EXPECT_EQ(d.node(), d.device() / 2);
  ASSERT_TRUE(plan.has_held_out());
  EXPECT_GE(plan.held_out().tokens_per_second(), plan.held_out_uniform().tokens_per_second());
  EXPECT_GT(plan.held_out_uniform().inter_node_bytes(), 0);
  EXPECT_LT(plan.held_out().inter_node_bytes(), 0.7 * plan.held_out_uniform().inter_node_bytes());
  EXPECT_GT(plan.prediction().inter_node_bytes(), 0);  // not everything fits twice
  // The hottest expert of every layer has a copy on both nodes.
  std::vector<const proto::ExpertPlacement*> hottest(4, nullptr);
  for (const auto& e : plan.experts())
    if (!hottest[size_t(e.layer())] || e.expected_load() > hottest[size_t(e.layer())]->expected_load())
      hottest[size_t(e.layer())] = &e;
  for (const auto* e : hottest) {
    bool node0 = false, node1 = false;
    for (int d : e->devices()) (d / 2 == 0 ? node0 : node1) = true;
    EXPECT_TRUE(node0 && node1) << "layer " << e->layer() << " expert " << e->expert();
  }
  bool in_sample = false, held_out = false;
  for (const std::string& line : plan.explanation()) {
    in_sample |= line.rfind("All-to-all, in-sample:", 0) == 0 && line.find("across nodes") != std::string::npos;
    held_out |= line.rfind("All-to-all, held out:", 0) == 0 && line.find("uniform plan:") != std::string::npos;
  }
  EXPECT_TRUE(in_sample);
  EXPECT_TRUE(held_out);

  // Room for only about three quarters of the experts and a very slow network: EPLB's copies
  // never start (not every expert is pinned), so only copies on both nodes, paid for with
  // experts left to the cache, keep rows off the network; the held-out replay takes them.
  HardwareProfile tight = hw;
  tight.gpu_memory_bytes = 0.36e9;
  tight.nic_bandwidth = 0.05e9;
  const PlacementPlan scarce = make_plan(s, trace, tight, o);
  ASSERT_TRUE(scarce.has_held_out());
  EXPECT_GE(scarce.held_out().tokens_per_second(), scarce.held_out_uniform().tokens_per_second());
  EXPECT_LT(scarce.held_out().inter_node_bytes(), 0.7 * scarce.held_out_uniform().inter_node_bytes());
  int offloaded = 0, on_both = 0;
  for (const auto& e : scarce.experts()) {
    offloaded += e.home() != proto::TIER_GPU;
    bool node0 = false, node1 = false;
    for (int d : e.devices()) (d / 2 == 0 ? node0 : node1) = e.home() == proto::TIER_GPU;
    on_both += node0 && node1;
  }
  EXPECT_GT(offloaded, 0);
  EXPECT_GT(on_both, 0);

  // GPUs that would fill a node and a half are refused; one node's worth is a one-node plan.
  o.devices = 3;
  EXPECT_THROW(make_plan(s, trace, hw, o), Error);
  o.devices = 2;
  const PlacementPlan one_node = make_plan(s, trace, hw, o);
  EXPECT_EQ(one_node.nodes(), 1);
  EXPECT_EQ(one_node.prediction().inter_node_bytes(), 0);
}

}  // namespace
}  // namespace moe::placement
