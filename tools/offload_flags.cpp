#include "tools/offload_flags.h"

#include <fmt/format.h>

#include "offload/executor/process_group.h"
#include "runtime/engine/rank_layout.h"
#include "tools/numeric_flags.h"


namespace moe::tools {

model::LoadOptions OffloadFlags::load_options() const {
  MOE_CHECK(weights.activations == "exact" || backend == "cpu", ErrorCode::kUnsupported,
            "--activations {} runs on the CPU kernels only: the cuda backend's are exact", weights.activations);
  return weights.load_options();
}

void add_offload_options(CLI::App& app, OffloadFlags& f) {
  app.add_option("--gpu-mem", f.gpu_mem,
                 "memory per device, e.g. 24GiB: the expert cache of each virtual device (cpu backend), or all the engine "
                 "keeps on each GPU (cuda: dense weights, KV cache, scratch, experts); experts that do not fit are offloaded");
  app.add_option("--mem-limit", f.mem_limit,
                 "host memory the run may use, e.g. 8GiB (default: the cgroup limit or the available memory): without "
                 "--gpu-mem, --host-mem or --plan the engine splits it itself (runs in place when the model fits, else keeps "
                 "what fits in expert caches and streams the rest); none: no split, the weights run in place as mapped");
  app.add_flag("--explain", f.explain, "say how the memory was split and why");
  app.add_option("--host-mem", f.host_mem, "host pool for expert copies (the middle tier), e.g. 64GiB")->capture_default_str();
  app.add_option("--devices", f.devices, "devices to shard experts over (virtual devices on the CPU backend)")
      ->check(whole_number(1, 64))->capture_default_str();
  app.add_option("--plan", f.plan, "placement plan (moe plan) giving every expert's home")->check(CLI::ExistingFile);
  app.add_option("--policy", f.policy, "device cache policy: lru, lfu or multi (HOBBIT)")
      ->check(CLI::IsMember({"lru", "lfu", "multi"}))->capture_default_str();
  app.add_option("--admission", f.admission,
                 "which misses a full device cache takes: frequency (only one used more often than the policy's victim; "
                 "the rest stream through without evicting, so a cache smaller than a step's experts does not thrash) "
                 "or all (every miss evicts)")
      ->check(CLI::IsMember({"frequency", "all"}))->capture_default_str();
  app.add_option("--prefetch", f.prefetch, "predictor: none, gate[:D] (the next layers' routers on this layer's input; next-layer, stacked:D), stats[:D], history[:D], popularity[:D] (learn from --profile-trace), or A+B (both); in place under a memory limit, the guessed experts are read ahead from disk")->capture_default_str();
  app.add_option("--prefetch-guesses", f.prefetch_guesses,
                 "experts the predictor guesses per token and layer (default: the model's experts per token); more find "
                 "more of the experts used, and the wrong ones are cancelled when their layer's routing is known")
      ->check(whole_number(1, 1 << 16));
  app.add_option("--profile-trace", f.profile_trace, "recorded routing (moe profile): what the statistical predictors learn from, and, under the automatic tiers, which experts are pinned")->check(CLI::ExistingFile);
  app.add_option("--miss", f.miss, "on a miss: wait, cpu (compute on the host), hobbit (lossy: int8 copy or skip)")
      ->check(CLI::IsMember({"wait", "cpu", "hobbit"}))->capture_default_str();
  app.add_option("--hobbit-t1", f.hobbit_t1, "hobbit: importance (normalised gate mass of the expert and those ranked below it) at or above which a missing expert is waited for (above 1: none is)")
      ->check(number(0, 2));
  app.add_option("--hobbit-t2", f.hobbit_t2, "hobbit: importance below which a missing expert is skipped")->check(number(0, 2));
  app.add_option("--routing", f.routing, "routing: default, dense, topk:K, threshold:EPS, threshold-topk:EPS (DS-MoE)")
      ->capture_default_str();
  app.add_option("--backend", f.backend, "where experts, dense products and attention run: cpu (virtual devices) or cuda (GPUs 0..devices-1)")
      ->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  app.add_option("--trace-out", f.trace_out, "record the router's choices to this trace file");
  app.add_option("--replay-trace", f.replay_trace, "force the router's choices from this trace")->check(CLI::ExistingFile);
  app.add_option("--rank-timeout", f.rank_timeout,
                 "under mpirun: seconds any exchange waits for the other ranks before the run fails, naming the rank "
                 "that waited (loading waits ten times as long)")
      ->check(number(0.1, 86400))->capture_default_str();
  add_weight_options(app, f.weights);
}

void start_ranks(const OffloadFlags& flags) {
  offload::on_every_rank("start", [&] {
    if (offload::ProcessGroup* group = offload::process_group()) {
      group->set_timeout(flags.rank_timeout);
      engine::rank_layout_of_flags(flags.devices, flags.plan, group->size(), group->rank());
    }
  });
}

void explain_placement(const engine::Engine& engine, const OffloadFlags& flags, bool json) {
  if (flags.explain && !json) fmt::print(stderr, "{}", engine.placement_text());
}

}  // namespace moe::tools
