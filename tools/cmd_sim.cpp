// `moe sim`: replays a router trace against a placement plan on a hardware profile.
#include <fmt/format.h>

#include "placement/cost/model_shape.h"
#include "placement/hardware/hardware_profile.h"
#include "placement/plan/plan_nodes.h"
#include "placement/sim/simulator.h"
#include "runtime/core/error.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"
#include "placement/trace/importers.h"

namespace moe::tools {
namespace {

struct Options {
  std::string plan, trace, hardware, model, profile;
  placement::SimOptions sim;
  bool json = false;
};

void run(const Options& o) {
  const placement::PlacementPlan plan = placement::load_plan(o.plan);
  const placement::Trace trace = placement::load_any_trace(o.trace);
  const placement::HardwareProfile hw = placement::load_hardware_profile(o.hardware);
  MOE_CHECK(!o.model.empty(), ErrorCode::kInvalidArgument, "--model is needed for the model's shapes");
  const placement::CostModel cost(placement::load_model_shape(o.model), hw);
  placement::Trace profile;
  placement::SimOptions options = o.sim;
  if (!o.profile.empty()) {
    std::error_code ec;
    MOE_CHECK(!std::filesystem::equivalent(o.profile, o.trace, ec), ErrorCode::kInvalidArgument,
              "--profile-trace is the replayed trace: the prefetcher would be judged on the routing it learnt from");
    profile = placement::load_any_trace(o.profile);
    options.profile = &profile;
  }
  const placement::SimResult r = placement::simulate(plan, trace, cost, options);
  int64_t h2d = 0;
  for (int64_t b : r.bytes_host_to_gpu) h2d += b;
  const bool bound = placement::prefetch_is_oracle(options.prefetch);  // figures from the trace's future
  if (o.json) {
    print_json({{"plan", o.plan}, {"trace", o.trace}, {"hardware", hw.name}, {"policy", o.sim.policy},
                {"admission", o.sim.admission}, {"prefetch", o.sim.prefetch}, {"exchange", o.sim.exchange}, {"upper_bound", bound},
                {"cache_slots", o.sim.cache_slots}, {"cache_scope", o.sim.cache_scope}, {"batch", o.sim.batch > 0 ? o.sim.batch : plan.batch()}, {"tokens", r.tokens}, {"steps", r.steps}, {"seconds", r.seconds},
                {"tokens_per_second", r.tokens_per_second()}, {"stall_fraction", r.stall_fraction()},
                {"gpu_hit_rate", r.gpu_hit_rate()}, {"cache_hit_rate", r.cache_hit_rate()},
                {"host_hit_rate", r.host_hit_rate()}, {"nvme_rate", r.nvme_rate()}, {"ready_hits", r.ready_hits}, {"late_hits", r.late_hits},
                {"misses", r.misses()}, {"late_hit_rate", r.late_hit_rate()}, {"miss", o.sim.miss},
                {"cpu_computed", r.cpu_computed}, {"cpu_seconds", r.cpu_seconds},
                {"bytes_nvme_to_host", r.bytes_nvme_to_host}, {"bytes_host_to_gpu", r.bytes_host_to_gpu},
                {"bytes_peer", r.bytes_peer}, {"bytes_intra_node", r.bytes_intra_node},
                {"bytes_inter_node", r.bytes_inter_node}, {"nodes", placement::plan_node_count(plan)}, {"prefetches", r.prefetches},
                {"prefetches_cancelled", r.prefetches_cancelled},
                {"prefetch_precision", r.prefetch_precision()}, {"prefetch_recall", r.prefetch_recall()},
                {"training", r.training.empty() ? (o.profile.empty() ? "" : "learnt from " + o.profile) : r.training},
                {"seconds_breakdown", {{"attention", r.attention_seconds}, {"head", r.head_seconds},
                                       {"experts", r.expert_seconds}, {"stall", r.stall_seconds},
                                       {"communication", r.communication_seconds},
                                       {"intra_node_links", r.intra_node_seconds},
                                       {"inter_node_links", r.inter_node_seconds}}}});
    return;
  }
  fmt::print("{} tokens in {} steps of {} on {} (policy {}, admission {}, prefetch {}{})\n", r.tokens, r.steps,
             o.sim.batch > 0 ? o.sim.batch : plan.batch(), hw.name, o.sim.policy,
             o.sim.policy == "belady" ? "belady's bypass" : o.sim.admission, o.sim.prefetch, bound ? ": reads the trace, an upper bound" : "");
  if (bound) fmt::print("  upper bound: the oracle prefetcher knows the next layer's experts; no predictor does\n");
  if (!r.training.empty()) fmt::print("  {}\n", r.training);
  if (o.sim.prefetch.rfind("gate", 0) == 0) fmt::print("  gate: the guesses recorded in the trace (the next layers' routers applied to each layer's input)\n");
  fmt::print("  {:.2f} tokens/s, {:.1f}% of the time waiting for copies\n", r.tokens_per_second(), 100 * r.stall_fraction());
  fmt::print("  expert uses: {:.1f}% on a GPU (cache hit rate {:.1f}% of offloaded uses), {:.1f}% from host, {:.1f}% from NVMe\n",
             100 * r.gpu_hit_rate(), 100 * r.cache_hit_rate(), 100 * r.host_hit_rate(), 100 * r.nvme_rate());
  fmt::print("  offloaded uses: {} ready hits, {} late hits ({:.1f}%: copy still in flight, a stall), {} misses\n", r.ready_hits,
             r.late_hits, 100 * r.late_hit_rate(), r.misses());
  if (o.sim.miss == "cpu")
    fmt::print("  misses computed on the host: {} ({:.2f} s of its expert compute)\n", r.cpu_computed, r.cpu_seconds);
  fmt::print("  bytes: NVMe->host {:.2f} GB, host->GPU {:.2f} GB, between GPUs {:.2f} GB\n", r.bytes_nvme_to_host / 1e9,
             h2d / 1e9, r.bytes_peer / 1e9);
  if (plan.devices_size() > 1) {
    const double tokens = double(std::max<int64_t>(r.tokens, 1));
    fmt::print("  all-to-all ({}, {} node{} of {} GPUs): inside nodes {:.3f} GB ({:.1f} KB, {:.3f} ms a token), across nodes {:.3f} GB "
               "({:.1f} KB, {:.3f} ms a token); {:.3f} ms a token on the critical path\n",
               o.sim.exchange, placement::plan_node_count(plan), placement::plan_node_count(plan) > 1 ? "s" : "",
               placement::plan_devices_per_node(plan), r.bytes_intra_node / 1e9, r.bytes_intra_node / tokens / 1e3,
               1e3 * r.intra_node_seconds / tokens, r.bytes_inter_node / 1e9, r.bytes_inter_node / tokens / 1e3,
               1e3 * r.inter_node_seconds / tokens, 1e3 * r.communication_seconds / tokens);
  }
  if (o.sim.prefetch != "none")
    fmt::print("  prefetch: {} copies ({} wrong ones stopped before landing), precision {:.1f}%, recall {:.1f}%\n",
               r.prefetches, r.prefetches_cancelled, 100 * r.prefetch_precision(), 100 * r.prefetch_recall());
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--plan", o->plan, "placement plan (moe plan -o)")->required()->check(CLI::ExistingFile);
  app.add_option("--trace", o->trace, "router trace to replay")->required()->check(CLI::ExistingFile);
  app.add_option("--hardware", o->hardware, "hardware profile: a file, or a name in configs/hardware/")->required();
  app.add_option("--model", o->model, "model folder or config.json (shapes)")->required();
  app.add_option("--policy", o->sim.policy, "expert cache policy")->check(CLI::IsMember({"lru", "lfu", "multi", "belady"}));
  app.add_option("--miss", o->sim.miss, "a missed expert: wait (copied to its GPU) or cpu (computed on the host, no copy)")
      ->check(CLI::IsMember({"wait", "cpu"}));
  app.add_option("--admission", o->sim.admission,
                 "which misses a full cache takes, as the engine's --admission: frequency (only one used more often than "
                 "the victim) or all (every miss evicts)")
      ->check(CLI::IsMember({"frequency", "all"}))->capture_default_str();
  app.add_option("--prefetch", o->sim.prefetch,
                 "none; gate (replays the guesses moe profile recorded in the trace: the next layer's router applied to "
                 "this layer's input); stats (transitions from this layer), history (this and the previous layer, the "
                 "sequence's own recent experts, matched training windows) or popularity, learnt from --profile-trace; "
                 "NAME:D prefetches D layers ahead (1 to 3); oracle reads the true next-layer experts from the trace (an "
                 "upper bound, not a predictor)");
  app.add_option("--guesses", o->sim.guesses,
                 "experts the prefetcher guesses per token and layer (default: the trace's experts per token; gate "
                 "replays at most the ranked guesses moe profile recorded, twice top-k)")
      ->check(whole_number(1, 1 << 20));
  app.add_option("--cache-slots", o->sim.cache_slots, "expert cache slots per GPU (default: the plan's)")
      ->check(whole_number<int64_t>(0, int64_t(1) << 30));
  app.add_option("--cache-scope", o->sim.cache_scope,
                 "shared: one cache per GPU for every layer; layer: the slots split evenly into one cache per layer")
      ->check(CLI::IsMember({"shared", "layer"}));
  app.add_option("--batch", o->sim.batch, "tokens per step: that many sequences decoded together (default: the plan's batch)")
      ->check(whole_number(1, 1 << 20));
  app.add_option("--profile-trace", o->profile,
                 "trace the stats, history and popularity prefetchers learn from (default: the replayed trace's first half "
                 "of sequences, the other half replayed; a trace of one sequence needs this)")
      ->check(CLI::ExistingFile);
  app.add_option("--exchange", o->sim.exchange,
                 "the expert exchange between GPUs: dispatch-combine (each token's row to its experts' GPUs and back, "
                 "data-parallel attention) or results-to-all (the engine's MPI exchange today: the dense part on every "
                 "rank, each result sent to every other GPU)")
      ->check(CLI::IsMember({"dispatch-combine", "results-to-all"}))->capture_default_str();
  app.add_flag("--json", o->json, "print one JSON document");
  app.callback([o] { run(*o); });
}

const CommandRegistration kSim("", "sim", "Replay a trace against a plan: tokens/s, stalls, hit rates, bytes per link", setup);

}  // namespace
}  // namespace moe::tools
