#pragma once
// The offloading options shared by `moe run`, `moe profile` and `moe bench decode`, and the
// session that wires them into a loaded model: an offloading expert runner within the budgets,
// a predictor, a trace recorder or replayer, and the statistics printed at the end (with the
// error of int8/int4 weights, and their logits against the checkpoint's where a command asks).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offload/executor/offloaded_experts.h"
#include "offload/executor/routing_trace.h"
#include "runtime/model/logit_comparison.h"
#include "runtime/model/model_loader.h"
#include "tools/weight_flags.h"

namespace moe::cuda {
class DeviceArena;
}

namespace moe::tools {

struct OffloadFlags {
  std::string gpu_mem, host_mem = "0", plan, policy = "lru", prefetch = "none", profile_trace, miss = "wait";
  int devices = 1;
  double hobbit_t1 = 0.5, hobbit_t2 = 0.1;
  std::string trace_out, replay_trace;
  std::string routing = "default";  // DS-MoE's modes: dense, topk:K, threshold:EPS, threshold-topk:EPS
  std::string backend = "cpu";      // where routed experts are computed: cpu or cuda
  int64_t context = 4096;           // tokens of KV cache the GPU budget keeps room for (set by the command)
  WeightFlags weights;              // --weights, --quantize: applied when the command loads the model
  bool offloading() const { return !gpu_mem.empty() || !plan.empty() || devices > 1 || backend != "cpu"; }
  model::LoadOptions load_options() const { return weights.load_options(); }
};

void add_offload_options(CLI::App& app, OffloadFlags& flags);

class OffloadSession {
 public:
  // Installs what the flags ask for on `model` (nothing when they ask for nothing).
  OffloadSession(model::LoadedModel& model, const OffloadFlags& flags, const std::string& model_name);
  ~OffloadSession();
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

 private:
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
};

}  // namespace moe::tools
