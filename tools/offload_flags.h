#pragma once
// The offloading options shared by `moe run`, `moe profile` and `moe bench decode`, and the
// session that wires them into a loaded model: an offloading expert runner within the budgets,
// a predictor, a trace recorder or replayer, and the statistics printed at the end.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offload/executor/offloaded_experts.h"
#include "offload/executor/routing_trace.h"
#include "runtime/model/model_loader.h"

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
  bool offloading() const { return !gpu_mem.empty() || !plan.empty() || devices > 1 || backend != "cpu"; }
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
  std::string summary_;
};

}  // namespace moe::tools
