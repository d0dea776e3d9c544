#include "placement/sim/simulator.h"

#include <fmt/format.h>

#include <algorithm>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "offload/cache/admission_filter.h"
#include "placement/plan/plan_nodes.h"
#include "placement/predict/predict_eval.h"
#include "placement/predict/routing_predictor.h"
#include "placement/sim/belady_policy.h"
#include "placement/sim/host_link.h"
#include "runtime/core/error.h"

namespace moe::placement {
namespace {

using offload::ExpertKey;
using offload::ExpertKeyHash;

struct CachedExpert {
  double ready = 0;           // when its copy lands
  bool unused_prefetch = false;
};

// An expert cache of fixed slots, with its eviction policy.
struct Cache {
  int64_t capacity = 0;
  std::unordered_map<ExpertKey, CachedExpert, ExpertKeyHash> cache;
  std::unique_ptr<offload::EvictionPolicy> policy;
  std::unique_ptr<offload::AdmissionFilter> admission;  // none: every miss may evict
  BeladyPolicy* belady = nullptr;
  std::unique_ptr<FutureUses> future;
  int64_t now = -1;  // position in this cache's access sequence
};

// One GPU: a compute stream, a host link and one cache (shared scope) or one per MoE layer.
struct Device {
  std::vector<Cache> caches;
  HostLink link;
  double copy_seconds = 0;  // copies started during the current layer (when they share the compute)
};

// Host pool: experts homed there, plus an LRU cache (by bytes) of experts read from NVMe.
struct HostTier {
  std::unordered_set<ExpertKey, ExpertKeyHash> resident;
  int64_t cache_capacity = 0, cache_used = 0;
  std::list<std::pair<ExpertKey, int64_t>> lru;  // most recent first
  std::unordered_map<ExpertKey, std::list<std::pair<ExpertKey, int64_t>>::iterator, ExpertKeyHash> where;
  double nvme_free = 0;

  bool holds(ExpertKey k) {
    if (resident.count(k)) return true;
    const auto it = where.find(k);
    if (it == where.end()) return false;
    lru.splice(lru.begin(), lru, it->second);
    return true;
  }
  void insert(ExpertKey k, int64_t bytes) {
    if (bytes > cache_capacity) return;
    while (cache_used + bytes > cache_capacity) {
      cache_used -= lru.back().second;
      where.erase(lru.back().first);
      lru.pop_back();
    }
    lru.emplace_front(k, bytes);
    where[k] = lru.begin();
    cache_used += bytes;
  }
};

struct Step {
  // Per MoE layer: expert -> tokens of this step that chose it (ascending expert ids).
  std::vector<std::map<int32_t, int>> layers;
  // The same, as each choosing token's offset in the step (which GPU it lives on).
  std::vector<std::map<int32_t, std::vector<int32_t>>> choosers;
  int tokens = 0;
  size_t first = 0;  // the step's tokens are trace.tokens[first, first + tokens)
};

std::vector<Step> make_steps(const Trace& trace, int batch, int64_t max_steps) {
  std::vector<Step> steps;
  for (size_t i = 0; i < trace.tokens.size(); i += size_t(batch)) {
    if (max_steps > 0 && int64_t(steps.size()) == max_steps) break;
    Step s;
    s.first = i;
    s.layers.resize(size_t(trace.model.num_layers));
    s.choosers.resize(size_t(trace.model.num_layers));
    for (size_t t = i; t < std::min(trace.tokens.size(), i + size_t(batch)); ++t) {
      for (const LayerRouting& l : trace.tokens[t].layers)
        for (int32_t e : l.experts) {
          ++s.layers[size_t(l.layer)][e];
          s.choosers[size_t(l.layer)][e].push_back(s.tokens);
        }
      ++s.tokens;
    }
    steps.push_back(std::move(s));
  }
  return steps;
}

// One layer's all-to-all, dispatch direction (combine is its mirror: the same busiest ends):
// bytes each GPU sends and receives inside its node and across nodes, and each node's NICs.
struct LinkLoad {
  LinkLoad(const std::vector<int>& node_of, int nodes, double row_bytes)
      : node_of(node_of), row(row_bytes), intra(node_of.size() * 2, 0.0), inter(node_of.size() * 2, 0.0),
        nic(size_t(nodes) * 2, 0.0) {}
  // Rows of the step's tokens `tokens` (offsets: token j lives on GPU j % GPUs) to GPU `to`.
  void route(const std::vector<int32_t>& tokens, int to) {
    for (int32_t j : tokens) add(1, size_t(j) % node_of.size(), size_t(to));
  }
  // Results-to-all: each token's result computed on GPU `from` goes to every other GPU.
  void to_every_gpu(const std::vector<int32_t>& tokens, int from) {
    for (size_t to = 0; to < node_of.size(); ++to) add(int64_t(tokens.size()), size_t(from), to);
  }
  // `rows` rows from GPU `from` to GPU `to`.
  void add(int64_t rows, size_t from, size_t to) {
    if (from == to || rows == 0) return;
    const double bytes = row * double(rows);
    const int a = node_of[from], b = node_of[to];
    std::vector<double>& link = a == b ? intra : inter;
    link[2 * from] += bytes;
    link[2 * to + 1] += bytes;
    (a == b ? intra_bytes : inter_bytes) += bytes;
    if (a != b) nic[2 * size_t(a)] += bytes, nic[2 * size_t(b) + 1] += bytes;
  }
  static double busiest(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()); }

  const std::vector<int>& node_of;
  double row;
  std::vector<double> intra, inter, nic;  // [2 * i]: sent by GPU (node) i, [2 * i + 1]: received
  double intra_bytes = 0, inter_bytes = 0;
};

class Simulation {
 public:
  Simulation(const PlacementPlan& plan, const Trace& trace, const CostModel& cost, const SimOptions& options)
      : plan_(plan), cost_(cost), options_(options) {
    const ModelShape& shape = cost.shape;
    MOE_CHECK(plan.num_layers() == trace.model.num_layers && plan.num_experts() == trace.model.num_experts,
              ErrorCode::kInvalidArgument, "the plan is for {} layers x {} experts, the trace has {} x {}", plan.num_layers(),
              plan.num_experts(), trace.model.num_layers, trace.model.num_experts);
    MOE_CHECK(plan.num_layers() == shape.num_sparse_layers && plan.num_experts() == shape.num_experts,
              ErrorCode::kInvalidArgument, "the plan is for {} MoE layers x {} experts, the model {} has {} x {}",
              plan.num_layers(), plan.num_experts(), shape.name, shape.num_sparse_layers, shape.num_experts);
    check_nodes(plan, cost.hw);
    const std::set<std::string> policies = {"lru", "lfu", "multi", "belady"};
    MOE_CHECK(policies.count(options.policy), ErrorCode::kInvalidArgument, "unknown policy '{}' (lru, lfu, multi or belady)",
              options.policy);
    MOE_CHECK(options.prefetch != "next-layer", ErrorCode::kInvalidArgument,
              "the simulator has no next-layer predictor: the prefetcher that reads the next layer's experts from the "
              "trace is --prefetch oracle, an upper bound");
    parse_prefetch(options.prefetch, trace);
    MOE_CHECK(options.miss == "wait" || options.miss == "cpu", ErrorCode::kInvalidArgument,
              "unknown miss handling '{}' (wait or cpu)", options.miss);
    MOE_CHECK(options.admission == "frequency" || options.admission == "all", ErrorCode::kInvalidArgument,
              "unknown cache admission '{}' (frequency or all)", options.admission);
    MOE_CHECK(options.cache_scope == "shared" || options.cache_scope == "layer", ErrorCode::kInvalidArgument,
              "unknown cache scope '{}' (shared or layer)", options.cache_scope);
    MOE_CHECK(options.exchange == "dispatch-combine" || options.exchange == "results-to-all", ErrorCode::kInvalidArgument,
              "unknown exchange '{}' (dispatch-combine or results-to-all)", options.exchange);
    results_to_all_ = options.exchange == "results-to-all";
    MOE_CHECK(options.cache_slots >= -1, ErrorCode::kInvalidArgument, "{} cache slots", options.cache_slots);
    for (const auto& e : plan.experts()) placement_[ExpertKey{e.layer(), e.expert()}] = &e;
    MOE_CHECK(options.batch >= 0, ErrorCode::kInvalidArgument, "a batch of {} tokens", options.batch);
    options_batch_ = options.batch;
    steps_ = make_steps(trace, options.batch > 0 ? options.batch : plan.batch(), options.max_steps);
    trace_ = &trace;
    if (predictor_needs_training(prefetch_)) {
      MOE_CHECK(options.profile != nullptr, ErrorCode::kInvalidArgument,
                "the {} prefetcher needs a training trace other than the replayed one", prefetch_);
      predictor_ = make_routing_predictor(prefetch_, *options.profile, trace.model);
    } else if (prefetch_ == "gate") {
      predictor_ = make_routing_predictor(prefetch_, trace, trace.model);
    }
    MOE_CHECK(options.guesses >= 0 && options.guesses <= trace.model.num_experts, ErrorCode::kInvalidArgument,
              "{} guesses per token and layer for a model of {} experts", options.guesses, trace.model.num_experts);
    guess_count_ = options.guesses > 0 ? options.guesses : default_guess_count(trace);

    per_layer_ = options.cache_scope == "layer";
    devices_.resize(size_t(plan.devices_size()));
    for (int d = 0; d < plan.devices_size(); ++d) {
      Device& dev = devices_[size_t(d)];
      const int64_t slots = options.cache_slots >= 0 ? options.cache_slots : plan.devices(d).cache_slots();
      const int n = per_layer_ ? plan.num_layers() : 1;
      dev.caches.resize(size_t(n));
      for (int c = 0; c < n; ++c) {
        Cache& cache = dev.caches[size_t(c)];
        cache.capacity = slots / n + (c < slots % n ? 1 : 0);  // the same memory in either scope
        if (options.policy == "belady") {
          cache.future = std::make_unique<FutureUses>(demand_accesses(d, per_layer_ ? c : -1));
          auto belady = std::make_unique<BeladyPolicy>(cache.future.get(), &cache.now);
          cache.belady = belady.get();
          cache.policy = std::move(belady);
        } else {
          cache.policy = offload::make_policy(options.policy, plan.num_layers());
        }
        if (options.policy != "belady")  // the experts this cache may see, as the engine counts them
          cache.admission = offload::make_admission(
              options.admission, uint64_t(plan.num_experts()) * uint64_t(per_layer_ ? 1 : plan.num_layers()));
      }
    }
    for (int d = 0; d < plan.devices_size(); ++d) node_.push_back(plan.devices(d).node());
    hosts_.resize(size_t(plan_node_count(plan)));
    std::vector<int64_t> host_home_bytes(hosts_.size(), 0);
    for (const auto& e : plan.experts())
      if (e.home() == proto::TIER_HOST) {
        const size_t n = size_t(node_[size_t(e.devices(0))]);
        hosts_[n].resident.insert(ExpertKey{e.layer(), e.expert()});
        host_home_bytes[n] += plan_expert_bytes(plan, e.format());
      }
    for (size_t n = 0; n < hosts_.size(); ++n)
      hosts_[n].cache_capacity = std::max<int64_t>(0, plan.host_pool_bytes() - host_home_bytes[n]);
    result_.bytes_host_to_gpu.assign(size_t(plan.devices_size()), 0);
  }

  SimResult run() {
    const ModelShape& shape = cost_.shape;
    const int G = plan_.devices_size();
    const int batch = options_batch_ > 0 ? options_batch_ : plan_.batch();
    const int per_device_batch = (batch + G - 1) / G;
    double t = 0;
    for (size_t s = 0; s < steps_.size(); ++s) {
      const Step& step = steps_[s];
      int sparse = 0;
      for (int layer = 0; layer < shape.num_layers; ++layer) {
        const bool is_sparse = shape.sparse_layers.empty() || shape.sparse_layers[size_t(layer)];
        const double attention = cost_.attention_seconds(per_device_batch, plan_.context()) +
                                 cost_.unrouted_ffn_seconds(is_sparse, per_device_batch);
        result_.attention_seconds += attention;
        t += attention;
        if (is_sparse) t = expert_phase(s, sparse++, t);
      }
      const double head = cost_.head_seconds(per_device_batch);
      result_.head_seconds += head;
      t += head;
      result_.tokens += step.tokens;
      if (predictor_)  // the step's tokens are history for the next ones
        for (size_t i = step.first; i < step.first + size_t(step.tokens); ++i)
          predictor_->observe(trace_->tokens[i].sequence_id, trace_->tokens[i]);
    }
    result_.steps = int64_t(steps_.size());
    result_.seconds = t;
    return result_;
  }

 private:
  // The device that computes an offloaded expert (pinned ones may have several replicas).
  int home_device(ExpertKey k) const { return placement_.at(k)->devices(0); }
  // The host (of the node) that holds an offloaded expert: its device's.
  HostTier& host_of(ExpertKey k) { return hosts_[size_t(node_[size_t(home_device(k))])]; }

  // A plan of one node fits within one node of the profile; a plan of several nodes needs the
  // profile's network and nodes at least as large.
  static void check_nodes(const PlacementPlan& plan, const HardwareProfile& hw) {
    const int nodes = plan_node_count(plan), per_node = plan_devices_per_node(plan);
    MOE_CHECK(per_node <= hw.gpus_per_node(), ErrorCode::kInvalidArgument,
              "the plan puts {} GPUs on a node, the hardware profile {} has {} a node", per_node, hw.name, hw.gpus_per_node());
    MOE_CHECK(nodes <= hw.node_count, ErrorCode::kInvalidArgument, "the plan spans {} nodes, the hardware profile {} has {}",
              nodes, hw.name, hw.node_count);
    for (const auto& d : plan.devices())  // a plan made in memory has not been through validate_plan
      MOE_CHECK(d.node() >= 0 && d.node() < nodes, ErrorCode::kInvalidArgument, "device {} is on node {} of a plan of {} nodes",
                d.device(), d.node(), nodes);
  }
  bool pinned(ExpertKey k) const { return placement_.at(k)->home() == proto::TIER_GPU; }
  int64_t bytes(ExpertKey k) const { return plan_expert_bytes(plan_, placement_.at(k)->format()); }

  Cache& cache_of(ExpertKey k) {
    Device& dev = devices_[size_t(home_device(k))];
    return dev.caches[per_layer_ ? size_t(k.layer) : 0];
  }

  // Every demand access of device d's cache (of one layer's, or all when `layer` < 0), in
  // order: the future Belady looks at.
  std::vector<ExpertKey> demand_accesses(int d, int layer) const {
    std::vector<ExpertKey> out;
    for (const Step& step : steps_)
      for (int l = 0; l < int(step.layers.size()); ++l)
        for (const auto& [e, n] : step.layers[size_t(l)]) {
          const ExpertKey k{l, e};
          if (layer >= 0 && l != layer) continue;
          if (!pinned(k) && home_device(k) == d) out.push_back(k);
        }
    return out;
  }

  // Copies k towards device d, starting no earlier than `t`; returns when it lands.
  double fetch(ExpertKey k, int d, double t, bool demand) {
    Device& dev = devices_[size_t(d)];
    HostTier& host = host_of(k);
    const int64_t b = bytes(k);
    double host_ready = t;
    if (host.holds(k)) {
      if (demand) ++result_.host_hits;
    } else {
      if (demand) ++result_.nvme_reads;
      const double start = std::max(t, host.nvme_free);
      host.nvme_free = start + cost_.nvme_to_host_seconds(b);
      host_ready = host.nvme_free;
      result_.bytes_nvme_to_host += b;
      host.insert(k, b);
    }
    const double seconds = cost_.host_to_gpu_seconds(b);
    dev.copy_seconds += seconds;
    result_.bytes_host_to_gpu[size_t(d)] += b;
    return demand ? dev.link.demand(t, host_ready, seconds) : dev.link.prefetch(t, k, host_ready, seconds);
  }

  // When a cached expert's copy lands: a prefetch's moves while later demand copies go ahead.
  double ready_of(ExpertKey k, const CachedExpert& c, double t) {
    const double lands = devices_[size_t(home_device(k))].link.landing(t, k);
    return lands >= 0 ? lands : c.ready;
  }

  // Unused prefetches of layers up to `layer` not chosen by this step stop copying (the
  // engine cancels them when the layer's routing is known); their slots come back.
  void cancel_wrong_prefetches(const Step& step, int layer, double t) {
    for (auto it = prefetched_.begin(); it != prefetched_.end();) {
      if (it->layer > layer) {
        ++it;
        continue;
      }
      const ExpertKey k = *it;
      it = prefetched_.erase(it);
      if (k.layer == layer && step.layers[size_t(layer)].count(k.expert)) continue;  // used below
      Cache& cache = cache_of(k);
      const auto c = cache.cache.find(k);
      if (c == cache.cache.end() || !c->second.unused_prefetch) continue;
      Device& dev = devices_[size_t(home_device(k))];
      if (ready_of(k, c->second, t) <= t) continue;  // landed: it stays cached
      const double unused = dev.link.cancel(t, k);
      const double seconds = cost_.host_to_gpu_seconds(bytes(k));
      result_.bytes_host_to_gpu[size_t(home_device(k))] -= int64_t(double(bytes(k)) * (seconds > 0 ? unused / seconds : 1));
      cache.cache.erase(c);
      cache.policy->on_remove(k);
      ++result_.prefetches_cancelled;
    }
  }

  // Makes room for k in its cache; false when nothing may go (or Belady bypasses).
  bool make_room(Cache& dev, ExpertKey k, const std::unordered_set<ExpertKey, ExpertKeyHash>& in_use, double t) {
    if (dev.capacity == 0) return false;
    if (int64_t(dev.cache.size()) < dev.capacity) return true;
    // Policies remember experts beyond residency (LFU counts): only cached ones may go, and not
    // a prefetch still copying (the engine's slot is filling).
    const auto evictable = [&](ExpertKey key) {
      return dev.cache.count(key) && !in_use.count(key) && devices_[size_t(home_device(key))].link.landing(t, key) <= t;
    };
    if (dev.belady && dev.belady->should_bypass(k, evictable)) return false;
    const auto victim = dev.policy->victim(evictable);
    if (!victim) return false;
    if (dev.admission && !dev.admission->admit(k, *victim)) return false;  // k streams past the cache
    dev.cache.erase(*victim);
    dev.policy->on_remove(*victim);
    return true;
  }

  double expert_phase(size_t s, int layer, double t) {
    const Step& step = steps_[s];
    const int G = plan_.devices_size();
    std::vector<std::vector<std::pair<double, double>>> work(static_cast<size_t>(G));  // (ready, compute seconds)
    std::vector<std::pair<double, double>> cpu_work;  // miss cpu: the host's experts
    std::vector<int> replica_tokens(static_cast<size_t>(G), 0);
    LinkLoad links(node_, int(hosts_.size()), cost_.row_bytes());
    const auto route = [&](const std::vector<int32_t>& tokens, int device) {
      if (results_to_all_) links.to_every_gpu(tokens, device);
      else links.route(tokens, device);
    };
    std::unordered_set<ExpertKey, ExpertKeyHash> in_use;
    std::vector<std::tuple<int, size_t, ExpertKey>> in_flight_hits;  // (device, its work item, expert)
    if (prefetch_ != "none") cancel_wrong_prefetches(step, layer, t);
    for (Device& dev : devices_) {
      for (Cache& c : dev.caches) c.policy->set_current_layer(layer);
      dev.copy_seconds = 0;
    }
    for (const auto& [e, n] : step.layers[size_t(layer)]) {
      const ExpertKey k{layer, e};
      const auto* p = placement_.at(k);
      const auto format = ExpertFormat(int(p->format()));
      ++result_.uses;
      if (p->home() == proto::TIER_GPU) {
        // The tokens of each node go to the replica on their node with the fewest tokens so far
        // (on one node: all of them, as the engine's executor sends them), or, when their node
        // has none, to the least loaded replica anywhere.
        std::map<int, std::vector<int32_t>> by_node;
        for (int32_t j : step.choosers[size_t(layer)].at(e)) by_node[node_[size_t(j % G)]].push_back(j);
        for (const auto& [node, tokens] : by_node) {
          int best = -1;
          for (bool local : {true, false}) {
            for (int d : p->devices())
              if ((!local || node_[size_t(d)] == node) && (best < 0 || replica_tokens[size_t(d)] < replica_tokens[size_t(best)]))
                best = d;
            if (best >= 0) break;
          }
          replica_tokens[size_t(best)] += int(tokens.size());
          work[size_t(best)].push_back({t, cost_.expert_gpu_seconds(format, int(tokens.size()))});
          route(tokens, best);
        }
        ++result_.pinned_hits;
        continue;
      }
      const int d = p->devices(0);
      Cache& dev = cache_of(k);
      ++dev.now;
      if (dev.admission) dev.admission->record(k);
      ++result_.offloaded_uses;
      in_use.insert(k);
      double ready = t;
      auto it = dev.cache.find(k);
      if (it != dev.cache.end()) {
        ++result_.cache_hits;
        if (it->second.unused_prefetch) {
          ++result_.prefetches_used;
          ++result_.offloaded_uses_prefetched;
          it->second.unused_prefetch = false;
        }
        // Still in flight: the compute below waits for it (a stall), so it is no plain hit.
        ready = ready_of(k, it->second, t);
        ++(ready > t ? result_.late_hits : result_.ready_hits);
        ready = std::max(t, ready);
        dev.policy->on_access(k);
        if (prefetch_ != "none") in_flight_hits.push_back({d, work[size_t(d)].size(), k});
      } else if (options_.miss == "cpu") {
        // Computed where it is: on the host, from host memory (after an NVMe read if needed).
        ++result_.cpu_computed;
        HostTier& host = host_of(k);
        double host_ready = t;
        if (host.holds(k)) {
          ++result_.host_hits;
        } else {
          ++result_.nvme_reads;
          const double start = std::max(t, host.nvme_free);
          host.nvme_free = start + cost_.nvme_to_host_seconds(bytes(k));
          host_ready = host.nvme_free;
          result_.bytes_nvme_to_host += bytes(k);
          host.insert(k, bytes(k));
        }
        cpu_work.push_back({host_ready, cost_.expert_cpu_seconds(format, n)});
        route(step.choosers[size_t(layer)].at(e), d);  // to its node's host, counted as to its GPU
        continue;
      } else {
        ready = fetch(k, d, t, /*demand=*/true);
        // Demand misses may reuse the slot of an expert computed earlier in this layer (its
        // compute is done by the time the copy lands), so the access stream is a plain
        // sequence and Belady is exactly optimal on it. Prefetches must spare this layer.
        if (make_room(dev, k, {}, t)) {
          dev.cache[k] = CachedExpert{ready, false};
          dev.policy->on_insert(k, released_precision(format));
        }
      }
      work[size_t(d)].push_back({ready, cost_.expert_gpu_seconds(format, n)});
      route(step.choosers[size_t(layer)].at(e), d);
    }
    // A used prefetch still queued lands after this layer's demand copies, which went ahead.
    for (const auto& [d, i, k] : in_flight_hits) {
      const auto it = cache_of(k).cache.find(k);
      if (it != cache_of(k).cache.end()) work[size_t(d)][i].first = std::max(work[size_t(d)][i].first, ready_of(k, it->second, t));
    }
    if (layer + 1 < plan_.num_layers()) prefetch(s, layer, t, in_use);

    // Each device computes its experts in order of arrival; the layer ends with the slowest.
    double end = t, stall = 0;
    for (size_t d = 0; d < work.size(); ++d) {
      auto& w = work[d];
      std::stable_sort(w.begin(), w.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      double clock = t, waited = 0, busy = 0;
      for (const auto& [ready, seconds] : w) {
        if (ready > clock) waited += ready - clock, clock = ready;
        clock += seconds;
        busy += seconds;
        result_.expert_seconds += seconds / G;
      }
      if (!cost_.hw.copies_overlap_compute) {  // copies and compute take turns on the same cores
        const double serial = t + devices_[d].copy_seconds + busy;
        if (serial > clock) waited += serial - clock, clock = serial;
      }
      if (clock > end) end = clock, stall = waited;
    }
    // The host's experts (miss cpu), one after another on all its cores, beside the GPUs: the
    // layer waits for the later of the two.
    if (!cpu_work.empty()) {
      std::stable_sort(cpu_work.begin(), cpu_work.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      double clock = t;
      for (const auto& [ready, seconds] : cpu_work) {
        clock = std::max(clock, ready) + seconds;
        result_.cpu_seconds += seconds;
      }
      if (clock > end) stall += clock - end, end = clock;
    }
    result_.stall_seconds += stall;
    return end + all_to_all(links);
  }

  // Dispatch then combine (or the results alone), each the longer of its links (fixed cost plus
  // busiest end); one GPU has no all-to-all.
  double all_to_all(const LinkLoad& links) {
    if (plan_.devices_size() < 2) return 0.0;
    const double intra = CostModel::kCollectiveLatency + cost_.intra_node_seconds(LinkLoad::busiest(links.intra));
    const double inter =
        links.inter_bytes > 0
            ? cost_.hw.network_latency + cost_.inter_node_seconds(LinkLoad::busiest(links.inter), LinkLoad::busiest(links.nic))
            : 0.0;
    const double n = results_to_all_ ? 1 : 2;  // phases: results only, or dispatch and combine
    result_.bytes_intra_node += n * links.intra_bytes;
    result_.bytes_inter_node += n * links.inter_bytes;
    result_.bytes_peer += n * (links.intra_bytes + links.inter_bytes);
    result_.intra_node_seconds += n * intra;
    result_.inter_node_seconds += n * inter;
    const double phases = n * std::max(intra, inter);
    result_.communication_seconds += phases;
    return phases;
  }

  // "name" or "name:D" (D layers ahead, 1 to 3); oracle reads layer + 1 only.
  void parse_prefetch(const std::string& spec, const Trace& trace) {
    const auto colon = spec.find(':');
    prefetch_ = spec.substr(0, colon);
    if (colon != std::string::npos) {
      const std::string depth = spec.substr(colon + 1);
      depth_ = depth.size() == 1 && depth[0] >= '1' && depth[0] <= '3' ? depth[0] - '0' : 0;
      MOE_CHECK(depth_ > 0 && prefetch_ != "none" && prefetch_ != "oracle", ErrorCode::kInvalidArgument,
                "prefetcher '{}': a depth is 1 to 3 layers ahead, after gate, stats, history or popularity", spec);
    }
    MOE_CHECK(prefetch_ == "none" || prefetch_ == "oracle" || prefetch_ == "gate" || predictor_needs_training(prefetch_),
              ErrorCode::kInvalidArgument,
              "unknown prefetcher '{}' (none, oracle, gate[:D], stats[:D], history[:D] or popularity[:D])", spec);
    if (prefetch_ == "gate") {
      bool recorded = false;
      for (const TokenRecord& t : trace.tokens)
        for (const LayerRouting& l : t.layers) recorded |= !l.guesses.empty();
      MOE_CHECK(recorded, ErrorCode::kInvalidArgument,
                "the replayed trace holds no recorded gate guesses (moe profile records them)");
    }
  }

  // Predicts the experts of the next layers (the next one, or `depth_` of them) and starts
  // their copies behind this layer's demand copies, nearest layer first.
  void prefetch(size_t s, int layer, double t, const std::unordered_set<ExpertKey, ExpertKeyHash>& in_use) {
    if (prefetch_ == "none") return;
    const Step& step = steps_[s];
    std::vector<ExpertKey> predicted;
    if (prefetch_ == "oracle") {
      for (const auto& [e, n] : step.layers[size_t(layer) + 1]) predicted.push_back({layer + 1, e});
    } else {
      std::vector<int32_t> guess;
      for (int ahead = 1; ahead <= depth_ && layer + ahead < plan_.num_layers(); ++ahead)
        for (size_t i = step.first; i < step.first + size_t(step.tokens); ++i) {
          const TokenRecord& token = trace_->tokens[i];
          size_t end = 0;  // the token's layers up to this one
          while (end < token.layers.size() && token.layers[end].layer <= layer) ++end;
          if (end == 0 || token.layers[end - 1].layer != layer) continue;
          const int count = guess_count_;
          predictor_->predict(token.sequence_id, std::span<const LayerRouting>(token.layers.data(), end), layer, ahead, count,
                              guess);
          for (int32_t e : guess) {
            const ExpertKey k{layer + ahead, e};
            if (std::find(predicted.begin(), predicted.end(), k) == predicted.end()) predicted.push_back(k);
          }
        }
    }
    for (const ExpertKey k : predicted) {
      if (pinned(k)) continue;
      Cache& dev = cache_of(k);
      if (dev.cache.count(k)) continue;
      if (!make_room(dev, k, in_use, t)) continue;
      const double ready = fetch(k, home_device(k), t, /*demand=*/false);
      prefetched_.insert(k);
      dev.cache[k] = CachedExpert{ready, true};
      dev.policy->on_insert(k, released_precision(ExpertFormat(int(placement_.at(k)->format()))));
      ++result_.prefetches;
    }
  }

  const PlacementPlan& plan_;
  const CostModel& cost_;
  const SimOptions& options_;
  std::unordered_map<ExpertKey, const proto::ExpertPlacement*, ExpertKeyHash> placement_;
  std::vector<Step> steps_;
  int options_batch_ = 0;  // SimOptions::batch: overrides the plan's
  const Trace* trace_ = nullptr;
  std::string prefetch_;  // the prefetcher's name, without its depth
  int depth_ = 1;         // layers ahead it prefetches
  int guess_count_ = 1;   // experts it guesses per token and layer (SimOptions::guesses)
  std::unique_ptr<RoutingPredictor> predictor_;  // gate, stats, history or popularity
  std::set<ExpertKey> prefetched_;                // prefetches not yet judged by their layer's routing
  std::vector<Device> devices_;
  bool per_layer_ = false;  // one cache per MoE layer on each device
  std::vector<int> node_;        // per device: its node
  bool results_to_all_ = false;  // SimOptions::exchange
  std::vector<HostTier> hosts_;  // per node
  SimResult result_;
};

}  // namespace

SimResult simulate(const PlacementPlan& plan, const Trace& trace, const CostModel& cost, const SimOptions& options) {
  const std::string name = options.prefetch.substr(0, options.prefetch.find(':'));
  if (!predictor_needs_training(name) || options.profile != nullptr) return Simulation(plan, trace, cost, options).run();
  // Never trained on the routing it replays: half the sequences train, the other half replay.
  const TraceSplit split = split_by_sequence(trace);
  SimOptions o = options;
  o.profile = &split.train;
  SimResult r = Simulation(plan, split.test, cost, o).run();
  r.training = fmt::format(
      "the {} prefetcher learnt from {} of the trace's {} sequences ({} tokens); the other {} ({} tokens) were replayed",
      name, split.train_sequences, split.train_sequences + split.test_sequences, split.train.tokens.size(),
      split.test_sequences, split.test.tokens.size());
  return r;
}

}  // namespace moe::placement
