#pragma once
// A discrete-event replay of a router trace against a placement plan on a hardware profile.
// Each GPU has a compute stream, a host link and an expert cache; the host has a pool and an
// NVMe queue. Per layer, experts already on the GPU are computed while missing ones arrive,
// in order of arrival; copies queue on their link, demand copies ahead of prefetches not yet
// started, and a wrong prefetch stops when its layer's routing shows it unused. Prints what the engine would see: time per
// token, stalls, hits per tier, bytes per link, prefetch precision and recall. A cached expert
// whose copy has not landed when it is used is a late hit: its wait is a stall, not a hit.
// Token j of a step lives on GPU j % GPUs; its row goes to each chosen expert's GPU and back,
// counted per link (inside a node, across nodes). Each node has its own host pool and NVMe.
#include <cstdint>
#include <string>
#include <vector>

#include "placement/cost/cost_model.h"
#include "placement/plan/plan_io.h"
#include "placement/trace/trace.h"

namespace moe::placement {

struct SimOptions {
  std::string policy = "lru";     // lru, lfu, multi, belady
  // frequency (the engine's default) or all: which misses a full cache takes
  // (offload/cache/admission_filter.h); Belady decides by its own bypass and ignores it.
  std::string admission = "frequency";
  // none; oracle (reads the true next-layer experts from the trace: an upper bound, no
  // predictor); gate (the guesses `moe profile` recorded in the replayed trace: the next layer's
  // router applied to this layer's input); stats, history or popularity (routing predictors
  // learnt from `profile`, placement/predict/routing_predictor.h). ":D" prefetches D layers
  // ahead (1 to 3; not oracle).
  std::string prefetch = "none";
  // Experts a prefetcher guesses per token and layer; 0: the trace's mean choice (top-k). More
  // guesses find more of the experts used (recall) and copy more wrong ones (precision).
  int guesses = 0;
  // Trace the learning prefetchers learn from. Null: the replayed trace is split by sequence,
  // the first half learnt from and the rest replayed (SimResult::training says so); a trace of
  // one sequence is refused. Never the replayed routing itself.
  const Trace* profile = nullptr;
  int64_t max_steps = 0;           // 0: the whole trace
  int batch = 0;                   // tokens per step; 0: the plan's batch
  int64_t cache_slots = -1;        // slots per GPU; -1: the plan's
  std::string cache_scope = "shared";  // shared: one cache per GPU for all layers; layer: the
                                       // slots split evenly into one cache per MoE layer
  // wait: a missed expert is copied to its GPU and computed there; cpu: it is computed on the
  // host from host memory (read from NVMe first when it lives there) while the GPUs compute the
  // rest, and no copy is made (Fiddler, KTransformers; the engine's --miss cpu).
  std::string miss = "wait";
  // The expert exchange across GPUs. dispatch-combine (DeepEP's shape, data-parallel attention):
  // token j lives on GPU j % GPUs, its row goes to each chosen expert's GPU and the result comes
  // back (two phases; a replica on the token's node is used when there is one). results-to-all
  // (the engine's exchange across MPI ranks today, one GPU a rank: the dense part replicated,
  // so every GPU holds every row and sends each result it computed to every other GPU; one
  // phase, and no placement keeps a row off the network).
  std::string exchange = "dispatch-combine";
};

// True for prefetchers that read the trace's future (their figures are bounds, not predictions).
inline bool prefetch_is_oracle(const std::string& prefetch) { return prefetch == "oracle"; }

struct SimResult {
  int64_t tokens = 0, steps = 0;
  double seconds = 0;
  double attention_seconds = 0, expert_seconds = 0, stall_seconds = 0, communication_seconds = 0, head_seconds = 0;
  // Expert uses (one per expert per layer per step on the device that computes it).
  int64_t uses = 0, pinned_hits = 0, host_hits = 0, nvme_reads = 0;
  int64_t cpu_computed = 0;  // misses computed on the host (miss cpu)
  double cpu_seconds = 0;    // the host's expert compute
  // Offloaded uses found in a GPU cache: ready (landed) or late (still in flight: it waited).
  int64_t cache_hits = 0, ready_hits = 0, late_hits = 0;
  int64_t bytes_nvme_to_host = 0;
  std::vector<int64_t> bytes_host_to_gpu;  // per device
  double bytes_peer = 0;  // between GPUs: bytes_intra_node + bytes_inter_node
  // The expert all-to-all (dispatch and combine), by link: hidden rows that leave their token's
  // GPU for a GPU of the same node, or of another node, and the time each kind of link took
  // (its fixed cost plus its busiest end, per phase: CostModel::intra/inter_node_seconds).
  double bytes_intra_node = 0, bytes_inter_node = 0;
  double intra_node_seconds = 0, inter_node_seconds = 0;
  int64_t prefetches = 0, prefetches_used = 0, offloaded_uses = 0, offloaded_uses_prefetched = 0;
  int64_t prefetches_cancelled = 0;  // wrong guesses stopped before they landed (their copy time given back)
  std::string training;  // how a learning prefetcher was trained when the replayed trace was split

  double tokens_per_second() const { return seconds > 0 ? double(tokens) / seconds : 0; }
  double stall_fraction() const { return seconds > 0 ? stall_seconds / seconds : 0; }
  int64_t misses() const { return offloaded_uses - cache_hits; }
  // Only experts already there count as hits; a late hit waited as a miss does, if less.
  double gpu_hit_rate() const { return uses ? double(pinned_hits + ready_hits) / double(uses) : 0; }
  double host_hit_rate() const { return uses ? double(host_hits) / double(uses) : 0; }
  double nvme_rate() const { return uses ? double(nvme_reads) / double(uses) : 0; }
  double cache_hit_rate() const {  // among uses of experts not pinned on a GPU
    return offloaded_uses ? double(ready_hits) / double(offloaded_uses) : 0;
  }
  double late_hit_rate() const { return offloaded_uses ? double(late_hits) / double(offloaded_uses) : 0; }
  double prefetch_precision() const { return prefetches ? double(prefetches_used) / double(prefetches) : 0; }
  double prefetch_recall() const { return offloaded_uses ? double(offloaded_uses_prefetched) / double(offloaded_uses) : 0; }
};

// Throws moe::Error(kInvalidArgument) when the plan, trace and model disagree (layers,
// experts, devices) or an option is unknown.
SimResult simulate(const PlacementPlan& plan, const Trace& trace, const CostModel& cost, const SimOptions& options);

}  // namespace moe::placement
