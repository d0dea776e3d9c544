#pragma once
// The engine API: a loaded model with what its options install on it (an offloading expert
// runner within the budgets, a predictor, a trace recorder or replayer, GPU backends), the
// statistics of a run (with the error of int8/int4 weights, and their logits against the
// checkpoint's where a caller asks), and schedulers that batch many sequences over it. `moe run`,
// `moe profile`, `moe bench` and `moe serve` are thin callers.
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offload/executor/offloaded_experts.h"
#include "offload/executor/routing_trace.h"
#include "runtime/engine/auto_tiers.h"
#include "runtime/engine/scheduler.h"
#include "runtime/model/logit_comparison.h"
#include "runtime/model/model_loader.h"

namespace moe::cuda {
class DeviceArena;
}

namespace moe::engine {

// Where experts live and how the model runs: every field as its command-line flag means it.
struct EngineOptions {
  std::string gpu_mem, host_mem = "0", plan, policy = "lru", prefetch = "none", profile_trace, miss = "wait";
  std::string admission = "frequency";  // which misses a full device cache takes (admission_filter.h)
  int prefetch_guesses = 0;  // experts the predictor guesses per token and layer; 0: the model's top-k
  int devices = 1;
  double hobbit_t1 = 0.5, hobbit_t2 = 0.1;
  std::string trace_out, replay_trace;
  std::string routing = "default";  // DS-MoE's modes: dense, topk:K, threshold:EPS, threshold-topk:EPS
  std::string backend = "cpu";      // where routed experts are computed: cpu or cuda
  int64_t context = 4096;           // tokens of KV cache the GPU budget keeps room for (set by the caller)
  int64_t batch = 1;                // sequences stepped together (sizes the streaming buffers)
  // Automatic tiers (auto_tiers.h): without hand budgets, the split of `mem_limit` (or of what
  // the machine allows: cgroup limit, available memory) decides whether experts are offloaded.
  std::string mem_limit;    // a size, "" (what the machine allows) or "none" (no split: in place)
  bool auto_tiers = true;  // false: the hand flags alone (benchmarks that sweep budgets)
  bool explain = false;    // callers print Engine::placement_text()
  // Under mpirun: seconds any exchange waits for the other ranks before the run fails.
  double rank_timeout = 60;
  bool offloading() const { return !gpu_mem.empty() || !plan.empty() || devices > 1 || backend != "cpu"; }
  bool hand_budgets() const { return !gpu_mem.empty() || !plan.empty() || host_mem != "0"; }
};

class Engine {
 public:
  // Installs what the options ask for on `model` (nothing when they ask for nothing); `model`
  // must outlive the engine, which leaves it as it found it.
  Engine(model::LoadedModel& model, const EngineOptions& options, const std::string& model_name);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  model::LoadedModel& model() { return model_; }
  model::Transformer& transformer() { return *model_.transformer; }
  // A scheduler over this model with a KV pool of `kv_bytes` in blocks of `kv_block_tokens`.
  std::unique_ptr<Scheduler> make_scheduler(uint64_t kv_bytes, int64_t kv_block_tokens, const SchedulerOptions& options);

  void begin_sequence(int64_t id);
  // Flushes a recorded trace into place; call once the run succeeded.
  void finish();
  nlohmann::json stats_json() const;
  std::string stats_text() const;
  const offload::OffloadedExperts* runner() const { return runner_.get(); }
  // For a model with int8/int4 weights, a comparison against the checkpoint's weights (loaded
  // from the same source on first use, routed the same way) whose result the stats then show;
  // null for a model as stored, or under a replayed trace (the reference would route on its own).
  model::LogitComparison* logit_comparison();
  bool records_trace() const { return recorder_ != nullptr; }
  // What the automatic tiers chose and why (empty when hand budgets decided): JSON and lines.
  const nlohmann::json& placement_json() const { return placement_; }
  std::string placement_text() const;
  bool replays_trace() const { return replayer_ != nullptr; }
 private:
  // The automatic tiers, when they apply (no hand budgets); fills placement_.
  std::optional<TierChoice> choose_automatic_tiers(const EngineOptions& options);
  void pin_from_routing(const EngineOptions& options, offload::OffloadOptions& o);
  void read_chosen_experts_ahead(const EngineOptions& options);
  nlohmann::json gpu_json() const;  // what --backend cuda put on GPU 0; empty otherwise
  model::LoadedModel& model_;
  placement::PlacementPlan plan_;
  placement::Trace profile_;
  std::vector<std::shared_ptr<cuda::DeviceArena>> arenas_;  // --backend cuda: one per GPU, outliving their users
  std::string gpu_split_;  // how GPU 0's budget divided
  std::unique_ptr<model::LinearBackend> linear_;  // --backend cuda: the dense products on GPU 0
  std::unique_ptr<model::AttentionBackend> attention_;  // and attention over a device KV cache
  std::unique_ptr<offload::OffloadedExperts> runner_;
  std::unique_ptr<offload::TraceRecorder> recorder_;
  std::unique_ptr<offload::TraceReplayer> replayer_;
  std::shared_ptr<std::pair<int64_t, int64_t>> routed_;  // (MoE layer-token decisions, experts chosen)
  std::string routing_;  // the --routing the reference runs under too
  std::unique_ptr<model::LoadedModel> reference_;
  std::unique_ptr<model::LogitComparison> comparison_;
  std::string summary_;
  int local_devices_ = 1;  // devices this process owns (under mpirun, of ranks x local_devices)
  nlohmann::json placement_;
};

}  // namespace moe::engine
