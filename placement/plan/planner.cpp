#include "placement/plan/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "placement/predict/routing_predictor.h"
#include "runtime/core/error.h"

namespace moe::placement {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct Budget {
  int64_t memory = 0, dense = 0, kv = 0, workspace = 0, experts = 0;  // per GPU
  int64_t host = 0;
};

struct Candidate {
  double pinned_share = 0;  // of each GPU's expert memory
  ExpertFormat gpu_format = ExpertFormat::kBF16, offload_format = ExpertFormat::kBF16;
  // Several nodes: the share of the pinned memory that first holds a copy of the hottest experts
  // on every node (their tokens then never cross the network). Above 0 it also sends the memory
  // left once every expert is pinned to such copies before EPLB's load-balancing ones.
  double every_node_share = 0;
};

proto::Format to_proto(ExpertFormat f) { return proto::Format(int(f)); }

class Planner {
 public:
  Planner(const ModelShape& shape, const Trace& trace, const HardwareProfile& hw, const PlannerOptions& options)
      : shape_(shape), trace_(trace), hw_(hw), options_(options), cost_(shape, hw) {
    MOE_CHECK(trace.model.num_layers == shape.num_sparse_layers && trace.model.num_experts == shape.num_experts,
              ErrorCode::kInvalidArgument, "the trace has {} MoE layers x {} experts, the model {} has {} x {}",
              trace.model.num_layers, trace.model.num_experts, shape.name, shape.num_sparse_layers, shape.num_experts);
    MOE_CHECK(!trace.tokens.empty(), ErrorCode::kInvalidArgument, "the trace holds no tokens");
    MOE_CHECK(options.batch > 0 && options.context > 0, ErrorCode::kInvalidArgument, "batch and context must be positive");
    MOE_CHECK(!options.formats.empty(), ErrorCode::kInvalidArgument, "no expert format allowed");
    MOE_CHECK(options.devices >= 0, ErrorCode::kInvalidArgument, "{} GPUs asked for", options.devices);
    // Negative searches; NaN fails both comparisons and is refused.
    MOE_CHECK(options.pinned_share < 0 || options.pinned_share <= 1, ErrorCode::kInvalidArgument,
              "the pinned share must be a number from 0 to 1, not {}", options.pinned_share);
    gpus_ = options.devices > 0 ? options.devices : hw.gpu_count;
    MOE_CHECK(gpus_ <= hw.gpu_count, ErrorCode::kInvalidArgument, "{} GPUs asked for, the profile {} has {}", gpus_, hw.name,
              hw.gpu_count);
    // GPUs fill nodes in order: a part of one node, or whole nodes.
    per_node_ = std::min(gpus_, hw.gpus_per_node());
    MOE_CHECK(gpus_ % per_node_ == 0, ErrorCode::kInvalidArgument,
              "{} GPUs asked for: the profile {} has {} a node, so a plan takes up to {} or a multiple of it", gpus_, hw.name,
              hw.gpus_per_node(), hw.gpus_per_node());
    nodes_ = gpus_ / per_node_;
    budget_.memory = int64_t(hw.gpu_memory_bytes);
    budget_.dense = shape.dense_bytes(options.dense_format);
    budget_.kv = shape.kv_cache_bytes((options.batch + gpus_ - 1) / gpus_, options.context);
    budget_.workspace = std::max<int64_t>(int64_t(256) << 20, int64_t(options.workspace_fraction * hw.gpu_memory_bytes));
    budget_.experts = budget_.memory - budget_.dense - budget_.kv - budget_.workspace;
    int64_t smallest = shape.expert_bytes(options.formats.front());
    for (ExpertFormat f : options.formats) smallest = std::min(smallest, shape.expert_bytes(f));
    MOE_CHECK(budget_.experts >= 2 * smallest, ErrorCode::kOutOfMemory,
              "{} does not fit on {}: {:.2f} GiB of GPU memory, dense weights {:.2f} GiB + KV cache {:.2f} GiB (batch {}, "
              "context {}) + workspace {:.2f} GiB leave no room for two experts of {:.3f} GiB",
              shape.name, hw.name, budget_.memory / kGiB, budget_.dense / kGiB, budget_.kv / kGiB, options.batch,
              options.context, budget_.workspace / kGiB, smallest / kGiB);
    budget_.host = int64_t(options.host_fraction * hw.host_memory_bytes);

    // Activations per token of every expert, from the trace.
    load_.assign(size_t(shape.num_sparse_layers) * size_t(shape.num_experts), 0.0);
    for (const TokenRecord& t : trace.tokens)
      for (const LayerRouting& l : t.layers)
        for (int32_t e : l.experts) load_[index(l.layer, e)] += 1.0 / double(trace.tokens.size());
  }

  // The candidate with the least time per token replaying `judge`, with that replay.
  struct Choice {
    Candidate candidate;
    SimResult result;
    double seconds_per_token = INFINITY;
    std::vector<std::string> tried;
  };
  Choice choose(const Trace& judge) const {
    Choice best;
    for (const Candidate& c : candidates()) {
      const SimResult r = simulate(build(c), judge, cost_, options_.sim);
      const double per_token = r.seconds / double(std::max<int64_t>(r.tokens, 1));
      best.tried.push_back(fmt::format("{:.0f}% pinned{}, {} on GPU, {} offloaded: {:.2f} tokens/s{}", 100 * c.pinned_share,
                                       nodes_ > 1 ? fmt::format(" ({:.0f}% of it on every node)", 100 * c.every_node_share) : "",
                                       format_name(c.gpu_format), format_name(c.offload_format), 1.0 / per_token,
                                       nodes_ > 1 ? fmt::format(", {:.1f} KB a token across nodes",
                                                                r.bytes_inter_node / double(std::max<int64_t>(r.tokens, 1)) / 1e3)
                                                  : ""));
      if (per_token < best.seconds_per_token * (1 - 1e-9)) {
        best.seconds_per_token = per_token;
        best.candidate = c;
        best.result = r;
      }
    }
    return best;
  }

  // The plan of `c` over this planner's trace, its in-sample prediction, and `notes` (held-out
  // figures) with the explanation.
  PlacementPlan run_candidate(const Candidate& c, const std::vector<std::string>& tried, const std::vector<std::string>& notes) {
    PlacementPlan plan = build(c);
    best_ = simulate(plan, trace_, cost_, options_.sim);
    record_prediction(plan.mutable_prediction(), best_);
    explain(plan, tried);
    for (const std::string& n : notes) plan.add_explanation(n);
    validate_plan(plan, "the planner's plan");
    return plan;
  }

  PlacementPlan run() {
    const Choice c = choose(trace_);
    return run_candidate(c.candidate, c.tried, {});
  }

 private:
  std::vector<Candidate> candidates() const {
    std::vector<Candidate> candidates;
    if (options_.strategy == "optimized") {
      const std::vector<double> every_node = nodes_ > 1 ? std::vector<double>{0, 0.25, 0.5, 1} : std::vector<double>{0};
      for (ExpertFormat g : options_.formats)
        for (ExpertFormat o : options_.formats)
          for (int i = 0; i <= 8; ++i)
            for (double share : every_node)
              if (options_.pinned_share < 0 || i == 0)
                candidates.push_back({options_.pinned_share < 0 ? i / 8.0 : options_.pinned_share, g, o, share});
    } else if (options_.strategy == "frequency") {
      candidates.push_back({1.0, options_.formats.front(), options_.formats.front()});
    } else if (options_.strategy == "uniform") {  // half pinned, or the share the user fixed
      candidates.push_back({options_.pinned_share >= 0 ? options_.pinned_share : 0.5, options_.formats.front(),
                            options_.formats.front()});
    } else {
      fail(ErrorCode::kInvalidArgument, "unknown strategy '{}' (optimized, frequency or uniform)", options_.strategy);
    }
    return candidates;
  }

  size_t index(int layer, int expert) const { return size_t(layer) * size_t(shape_.num_experts) + size_t(expert); }

  // Experts in the order they deserve GPU memory.
  std::vector<std::pair<int, int>> priority_order() const {
    std::vector<std::pair<int, int>> order;
    for (int l = 0; l < shape_.num_sparse_layers; ++l)
      for (int e = 0; e < shape_.num_experts; ++e) order.push_back({l, e});
    if (options_.strategy == "uniform") {  // round-robin over layers by expert id: no trace knowledge
      std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    } else {
      std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
        return load_[index(a.first, a.second)] > load_[index(b.first, b.second)];
      });
    }
    return order;
  }

  PlacementPlan build(const Candidate& c) const {
    const int64_t gpu_bytes = shape_.expert_bytes(c.gpu_format), off_bytes = shape_.expert_bytes(c.offload_format);
    PlacementPlan plan;
    plan.set_model_name(shape_.name);
    plan.set_hardware_name(hw_.name);
    plan.set_batch(options_.batch);
    plan.set_context(options_.context);
    plan.set_strategy(options_.strategy);
    plan.set_num_layers(shape_.num_sparse_layers);
    plan.set_num_experts(shape_.num_experts);
    plan.set_expert_bytes_bf16(shape_.expert_bytes(ExpertFormat::kBF16));
    if (c.gpu_format == ExpertFormat::kFp8 || c.offload_format == ExpertFormat::kFp8)
      plan.set_expert_bytes_fp8(shape_.expert_bytes(ExpertFormat::kFp8));

    plan.set_nodes(nodes_);
    plan.set_devices_per_node(per_node_);

    const auto order = priority_order();
    const int64_t pin_budget = int64_t(double(budget_.experts) * c.pinned_share);
    std::vector<int64_t> pinned_bytes(static_cast<size_t>(gpus_), 0);
    std::vector<double> device_load(static_cast<size_t>(gpus_), 0.0);
    std::vector<std::vector<int>> replicas(load_.size());
    // The least loaded GPU of `node` (any node: -1) with room under `limit` that lacks expert i.
    const auto room_on = [&](int node, size_t i, int64_t limit) {
      int d = -1;
      for (int k = node < 0 ? 0 : node * per_node_; k < (node < 0 ? gpus_ : (node + 1) * per_node_); ++k) {
        const bool has = std::find(replicas[i].begin(), replicas[i].end(), k) != replicas[i].end();
        if (!has && pinned_bytes[size_t(k)] + gpu_bytes <= limit && (d < 0 || device_load[size_t(k)] < device_load[size_t(d)]))
          d = k;
      }
      return d;
    };
    const auto pin = [&](size_t i, int d) {
      // A new copy takes an even share of the expert's load from the others.
      const double before = replicas[i].empty() ? 0.0 : load_[i] / double(replicas[i].size());
      const double after = load_[i] / double(replicas[i].size() + 1);
      for (int k : replicas[i]) device_load[size_t(k)] -= before - after;
      replicas[i].push_back(d);
      pinned_bytes[size_t(d)] += gpu_bytes;
      device_load[size_t(d)] += after;
    };
    // Several nodes: the hottest experts get a copy on every node first, within their share.
    const auto every_node = [&](int64_t limit) {
      for (const auto& [l, e] : order) {
        const size_t i = index(l, e);
        for (int n = 0; n < nodes_; ++n) {
          bool there = false;
          for (int k : replicas[i]) there |= k / per_node_ == n;
          if (there) continue;
          const int d = room_on(n, i, limit);
          if (d < 0) return;  // the nodes fill alike: one full means all are
          pin(i, d);
        }
      }
    };
    if (options_.strategy == "optimized" && nodes_ > 1 && c.every_node_share > 0)
      every_node(int64_t(double(pin_budget) * c.every_node_share));
    // Pin in priority order, each expert on the least loaded GPU with room (LPT balancing);
    // the frequency baseline fills GPUs round-robin instead.
    size_t next_round_robin = 0;
    for (const auto& [l, e] : order) {
      if (!replicas[index(l, e)].empty()) continue;  // on every node already
      int chosen = -1;
      for (int tries = 0; tries < gpus_; ++tries) {
        int d = -1;
        if (options_.strategy == "optimized") {
          for (int k = 0; k < gpus_; ++k)
            if (pinned_bytes[size_t(k)] + gpu_bytes <= pin_budget && (d < 0 || device_load[size_t(k)] < device_load[size_t(d)]))
              d = k;
        } else {
          d = int((next_round_robin + size_t(tries)) % size_t(gpus_));
          if (pinned_bytes[size_t(d)] + gpu_bytes > pin_budget) d = -1;
        }
        if (d >= 0) {
          chosen = d;
          break;
        }
        if (options_.strategy == "optimized") break;
      }
      if (chosen < 0) continue;
      ++next_round_robin;
      pin(index(l, e), chosen);
    }
    // EPLB-style replication: once every expert is pinned somewhere, spare pinned memory holds
    // extra copies of the experts with the highest load per copy, on the least loaded GPUs.
    const bool all_pinned = std::all_of(replicas.begin(), replicas.end(), [](const auto& r) { return !r.empty(); });
    if (options_.strategy == "optimized" && all_pinned && nodes_ > 1 && c.every_node_share > 0) every_node(pin_budget);
    if (options_.strategy == "optimized" && all_pinned && gpus_ > 1) {
      for (;;) {
        size_t hot = 0;
        double hottest = -1;
        for (size_t i = 0; i < replicas.size(); ++i) {
          const double per_copy = load_[i] / double(replicas[i].size());
          if (int(replicas[i].size()) < gpus_ && per_copy > hottest) hottest = per_copy, hot = i;
        }
        if (hottest <= 0) break;
        const int d = room_on(-1, hot, pin_budget);
        if (d < 0) break;
        pin(hot, d);
      }
    }

    // Offloaded experts: computed by the GPU with the least offloaded load; homed in the host
    // pool of that GPU's node while it has room (most used first), else on NVMe.
    std::vector<double> offload_load(static_cast<size_t>(gpus_), 0.0);
    std::vector<int64_t> host_used(static_cast<size_t>(nodes_), 0);
    bool any_nvme = false;
    std::vector<proto::ExpertPlacement> placed(load_.size());
    for (const auto& [l, e] : order) {
      proto::ExpertPlacement& p = placed[index(l, e)];
      p.set_layer(l);
      p.set_expert(e);
      p.set_expected_load(load_[index(l, e)]);
      const auto& r = replicas[index(l, e)];
      if (!r.empty()) {
        p.set_home(proto::TIER_GPU);
        p.set_format(to_proto(c.gpu_format));
        for (int d : r) p.add_devices(d);
        continue;
      }
      p.set_format(to_proto(c.offload_format));
      int d = 0;
      for (int k = 1; k < gpus_; ++k)
        if (offload_load[size_t(k)] < offload_load[size_t(d)]) d = k;
      offload_load[size_t(d)] += load_[index(l, e)];
      p.add_devices(d);
      int64_t& host = host_used[size_t(d / per_node_)];
      if (host + off_bytes <= budget_.host) {
        p.set_home(proto::TIER_HOST);
        host += off_bytes;
      } else {
        p.set_home(proto::TIER_NVME);
        any_nvme = true;
      }
    }
    for (auto& p : placed) *plan.add_experts() = std::move(p);
    plan.set_host_pool_bytes(any_nvme ? budget_.host : *std::max_element(host_used.begin(), host_used.end()));
    const bool anything_offloaded = std::any_of(replicas.begin(), replicas.end(), [](const auto& r) { return r.empty(); });
    for (int d = 0; d < gpus_; ++d) {
      auto* dev = plan.add_devices();
      dev->set_device(d);
      dev->set_node(d / per_node_);
      dev->set_memory_bytes(budget_.memory);
      dev->set_dense_bytes(budget_.dense);
      dev->set_kv_cache_bytes(budget_.kv);
      dev->set_workspace_bytes(budget_.workspace);
      dev->set_pinned_expert_bytes(pinned_bytes[size_t(d)]);
      const int64_t slots = anything_offloaded ? (budget_.experts - pinned_bytes[size_t(d)]) / off_bytes : 0;
      dev->set_cache_slots(int32_t(std::min<int64_t>(slots, int64_t(load_.size()))));
      dev->set_cache_bytes(int64_t(dev->cache_slots()) * off_bytes);
    }
    return plan;
  }

  static void record_prediction(proto::Prediction* p, const SimResult& r) {
    const double tokens = double(std::max<int64_t>(r.tokens, 1));
    p->set_tokens_per_second(r.tokens_per_second());
    p->set_seconds_per_token(r.seconds / tokens);
    p->set_attention_seconds((r.attention_seconds + r.head_seconds) / tokens);
    p->set_expert_compute_seconds(r.expert_seconds / tokens);
    p->set_transfer_stall_seconds(r.stall_seconds / tokens);
    p->set_communication_seconds(r.communication_seconds / tokens);
    p->set_gpu_hit_rate(r.gpu_hit_rate());
    p->set_host_hit_rate(r.host_hit_rate());
    p->set_nvme_rate(r.nvme_rate());
    p->set_intra_node_bytes(r.bytes_intra_node / tokens);
    p->set_inter_node_bytes(r.bytes_inter_node / tokens);
    p->set_intra_node_seconds(r.intra_node_seconds / tokens);
    p->set_inter_node_seconds(r.inter_node_seconds / tokens);
  }

  void explain(PlacementPlan& plan, const std::vector<std::string>& tried) const {
    int pinned = 0, replicas = 0, host = 0, nvme = 0, on_every_node = 0;
    for (const auto& e : plan.experts()) {
      if (e.home() == proto::TIER_GPU) ++pinned, replicas += e.devices_size() - 1;
      else if (e.home() == proto::TIER_HOST) ++host;
      else ++nvme;
      std::vector<bool> nodes(static_cast<size_t>(nodes_), false);
      if (e.home() == proto::TIER_GPU)
        for (int d : e.devices()) nodes[size_t(d / per_node_)] = true;
      on_every_node += nodes_ > 1 && std::all_of(nodes.begin(), nodes.end(), [](bool b) { return b; });
    }
    const auto& p = plan.prediction();
    plan.add_explanation(fmt::format("{} on {} ({} GPU{}), batch {}, context {}, strategy {}, dense weights in {}.", shape_.name,
                                     hw_.name, gpus_, gpus_ > 1 ? "s" : "", options_.batch, options_.context, options_.strategy,
                                     format_name(options_.dense_format)));
    if (nodes_ > 1)
      plan.add_explanation(fmt::format(
          "Nodes: {} of {} GPUs ({} inside each at {:.0f} GB/s a GPU; {} between them, {} NIC{} a node at {:.1f} GB/s each, "
          "{:.0f} us a phase). Token j of a step lives on GPU j % {}; each node homes its offloaded experts in its own host.",
          nodes_, per_node_, hw_.peer_link == PeerLink::kNvlink ? "NVLink" : "PCIe", hw_.peer_bandwidth / 1e9, hw_.network,
          hw_.nics, hw_.nics > 1 ? "s" : "", hw_.nic_bandwidth / 1e9, 1e6 * hw_.network_latency, gpus_));
    for (const auto& d : plan.devices())
      plan.add_explanation(fmt::format(
          "GPU {}{}: {:.2f} GiB = dense {:.2f} + KV cache {:.2f} + workspace {:.2f} + pinned experts {:.2f} + {} cache slots {:.2f} "
          "(free {:.2f}).",
          d.device(), nodes_ > 1 ? fmt::format(" (node {})", d.node()) : "", d.memory_bytes() / kGiB, d.dense_bytes() / kGiB,
          d.kv_cache_bytes() / kGiB, d.workspace_bytes() / kGiB,
          d.pinned_expert_bytes() / kGiB, d.cache_slots(), d.cache_bytes() / kGiB,
          (d.memory_bytes() - d.dense_bytes() - d.kv_cache_bytes() - d.workspace_bytes() - d.pinned_expert_bytes() -
           d.cache_bytes()) / kGiB));
    plan.add_explanation(fmt::format("Experts: {} pinned on GPUs (+{} replicas{}), {} in the {:.2f} GiB host pool{}, {} on NVMe.",
                                     pinned, replicas, nodes_ > 1 ? fmt::format("; {} on every node", on_every_node) : "",
                                     host, plan.host_pool_bytes() / kGiB, nodes_ > 1 ? " of each node" : "", nvme));
    plan.add_explanation(fmt::format(
        "Predicted {:.2f} tokens/s ({:.2f} ms per token step): attention and head {:.2f} ms, expert compute {:.2f} ms, "
        "waiting for copies {:.2f} ms, all-to-all {:.2f} ms; {:.1f}% of expert uses on the GPU, {:.1f}% from host, "
        "{:.1f}% from NVMe (policy {}, prefetch {}, misses {}).",
        p.tokens_per_second(), 1e3 * p.seconds_per_token(), 1e3 * p.attention_seconds(), 1e3 * p.expert_compute_seconds(),
        1e3 * p.transfer_stall_seconds(), 1e3 * p.communication_seconds(), 100 * p.gpu_hit_rate(), 100 * p.host_hit_rate(),
        100 * p.nvme_rate(), options_.sim.policy, options_.sim.prefetch,
        options_.sim.miss == "cpu" ? fmt::format("computed on the host: {} of them, {:.2f} ms per token", best_.cpu_computed,
                                                 1e3 * best_.cpu_seconds / double(std::max<int64_t>(best_.tokens, 1)))
                                   : std::string("copied to the GPU")));
    plan.add_explanation(fmt::format(
        "Offloaded uses: {} ready hits, {} late hits (copy still in flight: counted as stall, not as hits), {} misses; "
        "hit rate {:.1f}% ready, {:.1f}% late.",
        best_.ready_hits, best_.late_hits, best_.misses(), 100 * best_.cache_hit_rate(), 100 * best_.late_hit_rate()));
    if (gpus_ > 1) plan.add_explanation("All-to-all, in-sample: " + all_to_all_line(p) + ".");
    if (prefetch_is_oracle(options_.sim.prefetch))
      plan.add_explanation(
          "Prefetch oracle reads the true next-layer experts from the trace: these figures are an upper bound, not a "
          "prediction.");
    for (const auto& t : tried) plan.add_explanation("Candidate: " + t + ".");
  }

  const ModelShape& shape_;
  const Trace& trace_;

 public:
  // Bytes and time a token of the all-to-all puts on each kind of link.
  static std::string all_to_all_line(const proto::Prediction& p) {
    return fmt::format("{:.1f} KB a token inside nodes ({:.3f} ms a token), {:.1f} KB a token across nodes ({:.3f} ms a token)",
                       p.intra_node_bytes() / 1e3, 1e3 * p.intra_node_seconds(), p.inter_node_bytes() / 1e3,
                       1e3 * p.inter_node_seconds());
  }
  void set_held_out(PlacementPlan& plan, const SimResult& chosen, const SimResult& uniform) const {
    record_prediction(plan.mutable_held_out(), chosen);
    record_prediction(plan.mutable_held_out_uniform(), uniform);
    if (gpus_ > 1)
      plan.add_explanation(fmt::format("All-to-all, held out: {}; uniform plan: {}.", all_to_all_line(plan.held_out()),
                                       all_to_all_line(plan.held_out_uniform())));
  }

 private:
  const HardwareProfile& hw_;
  const PlannerOptions& options_;
  CostModel cost_;
  int gpus_ = 1;
  int per_node_ = 1, nodes_ = 1;  // GPUs a node, nodes used
  Budget budget_;
  std::vector<double> load_;
  SimResult best_;  // the chosen candidate's replay, for the explanation
};

}  // namespace

PlacementPlan make_plan(const ModelShape& shape, const Trace& trace, const HardwareProfile& hardware,
                        const PlannerOptions& options) {
  if (options.strategy == "uniform" || count_sequences(trace) < 2) {
    PlacementPlan plan = Planner(shape, trace, hardware, options).run();
    plan.add_explanation(options.strategy == "uniform"
                             ? "Held out: nothing to hold out (the uniform plan reads no routing)."
                             : "Held out: nothing (the trace holds one sequence): every figure here is in-sample.");
    return plan;
  }
  // Candidates are ranked on routing their ranking has not seen: planned from the first half of
  // the trace's sequences, replayed on the rest; the uniform plan, which reads no routing, is
  // judged on the same half, and wins when the trace's plan does worse there.
  const TraceSplit split = split_by_sequence(trace);
  const auto choice = Planner(shape, split.train, hardware, options).choose(split.test);
  PlannerOptions uniform = options;
  uniform.strategy = "uniform";
  const auto baseline = Planner(shape, split.train, hardware, uniform).choose(split.test);
  const bool keep = choice.seconds_per_token <= baseline.seconds_per_token * (1 + 1e-9);
  const std::vector<std::string> notes = {
      fmt::format("Held out: planned on {} sequences ({} tokens), judged on the other {} ({} tokens): {} {:.2f} tokens/s, "
                  "uniform {:.2f}; the in-sample prediction above replays the whole trace.",
                  split.train_sequences, split.train.tokens.size(), split.test_sequences, split.test.tokens.size(),
                  options.strategy, 1.0 / choice.seconds_per_token, 1.0 / baseline.seconds_per_token),
      keep ? fmt::format("Chosen by the held-out figure: {:.0f}% pinned{}.", 100 * choice.candidate.pinned_share,
                         hardware.node_count > 1 && choice.candidate.every_node_share > 0
                             ? fmt::format(", {:.0f}% of it first on every node", 100 * choice.candidate.every_node_share)
                             : "")
           : std::string("The uniform plan does better on held-out routing than the trace's plan: it is the plan.")};
  if (!keep) {
    Planner planner(shape, trace, hardware, uniform);
    PlacementPlan plan = planner.run_candidate(baseline.candidate, baseline.tried, notes);
    planner.set_held_out(plan, baseline.result, baseline.result);
    plan.set_strategy(options.strategy + " (uniform won on held-out routing)");
    return plan;
  }
  Planner planner(shape, trace, hardware, options);
  PlacementPlan plan = planner.run_candidate(choice.candidate, choice.tried, notes);
  planner.set_held_out(plan, choice.result, baseline.result);
  return plan;
}

namespace {
// The fields every plan of the executor's own layouts (no planner search) starts with.
PlacementPlan executor_plan(const ModelShape& shape, const char* strategy, int batch, int context) {
  PlacementPlan p;
  p.set_model_name(shape.name);
  p.set_batch(batch);
  p.set_context(context);
  p.set_strategy(strategy);
  p.set_num_layers(shape.num_sparse_layers);
  p.set_num_experts(shape.num_experts);
  p.set_expert_bytes_bf16(shape.expert_bytes(ExpertFormat::kBF16));
  return p;
}
}  // namespace

PlacementPlan cache_only_plan(const ModelShape& shape, int devices, int slots, int64_t host_bytes, int batch, int context) {
  PlacementPlan p = executor_plan(shape, "cache-only", batch, context);
  const int64_t bytes = p.expert_bytes_bf16();
  int64_t host_used = 0;
  for (int l = 0; l < shape.num_sparse_layers; ++l)
    for (int e = 0; e < shape.num_experts; ++e) {
      auto* x = p.add_experts();
      x->set_layer(l);
      x->set_expert(e);
      const bool host = host_used + bytes <= host_bytes;
      host_used += host ? bytes : 0;
      x->set_home(host ? proto::TIER_HOST : proto::TIER_NVME);
      x->add_devices(e % devices);
    }
  p.set_host_pool_bytes(host_bytes);
  for (int d = 0; d < devices; ++d) {
    auto* dev = p.add_devices();
    dev->set_device(d);
    dev->set_memory_bytes(int64_t(slots) * bytes);
    dev->set_cache_slots(slots);
    dev->set_cache_bytes(int64_t(slots) * bytes);
  }
  validate_plan(p, "the cache-only plan");
  return p;
}

PlacementPlan resident_plan(const ModelShape& shape, int devices, int batch, int context) {
  PlacementPlan p = executor_plan(shape, "resident", batch, context);
  const int64_t bytes = p.expert_bytes_bf16();
  std::vector<int64_t> pinned(size_t(devices), 0);
  for (int l = 0; l < shape.num_sparse_layers; ++l)
    for (int e = 0; e < shape.num_experts; ++e) {
      auto* x = p.add_experts();
      x->set_layer(l);
      x->set_expert(e);
      x->set_home(proto::TIER_GPU);
      x->add_devices(e % devices);
      pinned[size_t(e % devices)] += bytes;
    }
  for (int d = 0; d < devices; ++d) {
    auto* dev = p.add_devices();
    dev->set_device(d);
    dev->set_memory_bytes(pinned[size_t(d)]);
    dev->set_pinned_expert_bytes(pinned[size_t(d)]);
  }
  validate_plan(p, "the resident plan");
  return p;
}

}  // namespace moe::placement
