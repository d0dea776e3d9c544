#include "placement/plan/slot_split.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "placement/cost/cost_model.h"
#include "placement/hardware/hardware_profile.h"
#include "placement/plan/planner.h"
#include "placement/predict/routing_predictor.h"
#include "runtime/core/error.h"

namespace moe::placement {
namespace {

// The first half of the trace's sequences and the rest (placement/predict's split); a trace of
// one sequence (a single `moe run --trace-out`) splits at its middle token.
std::pair<Trace, Trace> split_in_two(const Trace& trace) {
  if (count_sequences(trace) >= 2) {
    TraceSplit split = split_by_sequence(trace);
    return {std::move(split.train), std::move(split.test)};
  }
  Trace first{trace.model, {}, 0}, second{trace.model, {}, 0};
  const auto middle = trace.tokens.begin() + std::ptrdiff_t(trace.tokens.size() / 2);
  first.tokens.assign(trace.tokens.begin(), middle);
  second.tokens.assign(middle, trace.tokens.end());
  return {std::move(first), std::move(second)};
}

// Uses of each (layer, expert) in `trace`, layer-major.
std::vector<int64_t> use_counts(const Trace& trace, int layers, int experts) {
  std::vector<int64_t> counts(size_t(layers) * size_t(experts), 0);
  for (const TokenRecord& t : trace.tokens)
    for (const LayerRouting& l : t.layers)
      for (const int32_t e : l.experts)
        if (l.layer >= 0 && l.layer < layers && e >= 0 && e < experts) ++counts[size_t(l.layer) * size_t(experts) + size_t(e)];
  return counts;
}

// The cache-only plan with each device's `pinned` hottest experts (by `counts`) pinned on it.
PlacementPlan with_pinned(const ModelShape& shape, const std::vector<int64_t>& counts, int devices, int slots, int pinned) {
  PlacementPlan plan = cache_only_plan(shape, devices, slots - pinned, 0, 1, 1);
  plan.set_strategy(pinned > 0 ? "automatic: hottest pinned, the rest cached" : "automatic: cache only");
  std::vector<int> order(counts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return counts[size_t(a)] > counts[size_t(b)]; });
  std::vector<int> taken(size_t(devices), 0);
  const int64_t bytes = shape.expert_bytes(ExpertFormat::kBF16);
  for (const int i : order) {
    if (counts[size_t(i)] == 0) break;  // never used: not worth a slot for the whole run
    proto::ExpertPlacement* x = plan.mutable_experts(i);
    const int d = x->devices(0);
    if (taken[size_t(d)] >= pinned) continue;
    ++taken[size_t(d)];
    x->set_home(proto::TIER_GPU);
  }
  for (int d = 0; d < devices; ++d) {
    proto::DevicePlan* dev = plan.mutable_devices(d);
    dev->set_pinned_expert_bytes(int64_t(taken[size_t(d)]) * bytes);
    dev->set_cache_slots(slots - taken[size_t(d)]);
    dev->set_cache_bytes(int64_t(slots - taken[size_t(d)]) * bytes);
    dev->set_memory_bytes(int64_t(slots) * bytes);
  }
  validate_plan(plan, "the automatic plan");
  return plan;
}

// A machine for the simulator: only hit rates are read from it, so its speeds are nominal.
HardwareProfile nominal_machine(int devices) {
  HardwareProfile p;
  p.name = "nominal";
  p.gpu_count = devices;
  p.gpu_memory_bytes = p.host_memory_bytes = 1e12;
  p.gpu_memory_bandwidth = p.host_memory_bandwidth = 20e9;
  p.gpu_bf16_flops = p.cpu_flops = 1e11;
  p.host_to_device_bandwidth = p.nvme_read_bandwidth = 10e9;
  p.nvme_iops = 1e6;
  p.cpu_cores = 1;
  p.copies_overlap_compute = false;
  return p;
}

}  // namespace

SlotSplit choose_slot_split(const ModelShape& shape, const Trace& trace, int devices, int slots, const SimOptions& sim) {
  MOE_CHECK(trace.model.num_layers == shape.num_sparse_layers && trace.model.num_experts == shape.num_experts,
            ErrorCode::kInvalidArgument, "the routing trace has {} layers x {} experts, the model {} x {}",
            trace.model.num_layers, trace.model.num_experts, shape.num_sparse_layers, shape.num_experts);
  MOE_CHECK(trace.tokens.size() >= 2 && slots >= 1, ErrorCode::kInvalidArgument,
            "a slot split needs a trace of two tokens or more and one slot");
  const auto [train, test] = split_in_two(trace);
  const std::vector<int64_t> train_counts = use_counts(train, shape.num_sparse_layers, shape.num_experts);
  const CostModel cost(shape, nominal_machine(devices));
  SlotSplit best;
  best.held_out_hit_rate = -1;
  std::vector<int> tried;
  for (const double share : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    const int pinned = std::min(slots, int(share * slots + 0.5));
    if (std::find(tried.begin(), tried.end(), pinned) != tried.end()) continue;
    tried.push_back(pinned);
    const SimResult r = simulate(with_pinned(shape, train_counts, devices, slots, pinned), test, cost, sim);
    const double hit = r.uses ? double(r.pinned_hits + r.ready_hits) / double(r.uses) : 0;
    best.why.push_back(fmt::format("{} pinned + {} cache slots per device: {:.1f}% of held-out uses hit", pinned, slots - pinned,
                                   100 * hit));
    if (hit > best.held_out_hit_rate + 1e-9) {
      best.held_out_hit_rate = hit;
      best.pinned_per_device = pinned;
    }
  }
  best.plan = with_pinned(shape, use_counts(trace, shape.num_sparse_layers, shape.num_experts), devices, slots,
                          best.pinned_per_device);
  best.why.push_back(fmt::format("chosen: {} pinned (the trace's hottest), {} cache slots; ranked on the first half of the "
                                 "trace's sequences, judged on the rest ({} and {} tokens)",
                                 best.pinned_per_device, slots - best.pinned_per_device, train.tokens.size(), test.tokens.size()));
  return best;
}

}  // namespace moe::placement
