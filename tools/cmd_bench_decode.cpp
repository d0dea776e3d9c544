// `moe bench decode`: decode tokens/s beside the bound of its weight traffic: memory bandwidth on
// the CPU; with offloading, the link its expert copies cross (memcpy for CPU virtual devices, a
// pinned host-to-device copy for --backend cuda), measured in the same run.
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "offload/executor/process_group.h"
#include "offload/executor/routing_trace.h"
#include "placement/plan/planner.h"
#include "placement/trace/importers.h"
#include "runtime/core/error.h"
#include "runtime/core/size_parse.h"
#include "kernels/cpu/compute_peak.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/engine/batch_benchmark.h"
#include "runtime/model/decode_benchmark.h"
#include "runtime/model/default_model.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/synthetic_weights.h"
#include "tools/calibrate.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"
#include "tools/offload_flags.h"
#if MOE_HAVE_CUDA
#include "offload/gpu/transfer_benchmark.h"
#endif

namespace moe::tools {
namespace {

struct Flags {
  std::string model, config;
  int prompt_tokens = 16;
  int decode_tokens = 32;
  bool json = false;
  std::string budgets;  // --gpu-mem A,B,C: one run per budget
  bool predict = false;  // beside each run, moe sim's prediction from a profile measured now
  bool shared_expert_bytes = false;  // --config: experts share their bytes (fits Mixtral-8x7B in RAM)
  int layers = 0;                    // --config: keep the first N layers (0: all)
  std::string batches;  // --batch 1,4,16: aggregate decode of that many sequences stepped together
  int64_t kv_block = 16;
  OffloadFlags offload;
};

// moe sim's replay of the engine's predictor `spec`: the gate kinds from the guesses this run
// records (the same routers on the same inputs, top-k each, as the engine guesses), the learnt
// ones trained on the same profile trace. A union, or a gate deeper than the simulator's three
// layers, has no replay: the trace oracle stands in, and the prediction is a bound.
struct SimPredictor {
  std::string prefetch = "none";
  int record_depth = 0;  // gate: layers ahead whose guesses the run records
  bool bound = false;
};
SimPredictor sim_predictor(const std::string& spec) {
  if (spec == "none" || spec.empty()) return {};
  if (spec.find('+') != std::string::npos) return {"oracle", 0, true};
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const int depth = colon == std::string::npos ? 1 : std::stoi(spec.substr(colon + 1));  // make_predictor checked it
  if (name == "next-layer" || name == "gate" || name == "stacked")
    return depth <= 3 ? SimPredictor{fmt::format("gate:{}", depth), depth, false} : SimPredictor{"oracle", 0, true};
  return {spec, 0, false};  // stats, history, popularity
}

// While alive, records the gate guesses `p` replays into `collector` (chaining the transformer's
// expert-input hook, restored on destruction).
class GuessRecording {
 public:
  GuessRecording(model::Transformer& t, offload::TraceCollector& collector, const SimPredictor& p, int count)
      : t_(t), previous_(t.expert_input_hook()) {
    if (p.record_depth == 0) return;
    const int depth = p.record_depth;
    t.set_expert_input_hook([this, &collector, depth, count](int layer, const float* x, int64_t n, const model::RoutingDecision& d) {
      if (previous_) previous_(layer, x, n, d);
      offload::gate_guesses_ahead(t_, layer, x, n, depth, count, guesses_);
      for (int64_t i = 0; i < n; ++i) collector.add_guesses(i, std::move(guesses_[size_t(i)]));
    });
  }
  ~GuessRecording() { t_.set_expert_input_hook(previous_); }
  GuessRecording(const GuessRecording&) = delete;
  GuessRecording& operator=(const GuessRecording&) = delete;

 private:
  model::Transformer& t_;
  model::ExpertInputHook previous_;
  std::vector<std::vector<placement::GateGuess>> guesses_;
};

// What the simulator's learnt predictors train on with --predict: the engine's --profile-trace,
// read once for every run.
std::optional<placement::Trace> profile_trace_for_sim(const Flags& f) {
  if (!f.predict || f.offload.profile_trace.empty()) return std::nullopt;
  return placement::load_any_trace(f.offload.profile_trace);
}

// The engine's guesses per token and layer (--prefetch-guesses, else the model's top-k).
int engine_guesses(const OffloadFlags& o, const loading::ModelConfig& c) {
  return o.prefetch_guesses > 0 ? o.prefetch_guesses : std::max(1, c.num_experts_per_tok);
}

// The simulator's options for the engine's: policy, admission, and the predictor's replay with
// the engine's guesses per token and layer.
placement::SimOptions sim_options(const OffloadFlags& o, const SimPredictor& p, const placement::Trace* profile,
                                  const loading::ModelConfig& c) {
  placement::SimOptions sim;
  sim.policy = o.policy;
  sim.admission = o.admission;
  sim.prefetch = p.prefetch;
  sim.guesses = p.prefetch == "none" || p.prefetch == "oracle" ? 0 : engine_guesses(o, c);
  sim.profile = profile;
  return sim;
}

// Under mpirun: the timed decode steps' exchanges of expert results (bytes this rank sent, the
// executor's whole exchange and the collective's call per step), beside the same exchanges
// made again through the bare collective (MPI_Alltoallv; NCCL's send/receive group), every
// rank together. Null outside mpirun.
struct RankFigures {
  nlohmann::json json;
  std::string text;
};
std::optional<RankFigures> rank_figures(const engine::Engine& session, const offload::OffloadStats& before, int steps) {
  const offload::OffloadedExperts* runner = session.runner();
  offload::RankCommunicator* ranks = runner ? runner->ranks() : nullptr;
  if (!ranks) return std::nullopt;
  const offload::OffloadStats after = runner->stats();
  const double bare = ranks->replay_bare();
  const uint64_t exchanges = after.rank_exchanges - before.rank_exchanges;
  const double per_step = 1.0 / std::max(steps, 1);
  const double bytes = double(after.bytes_between_ranks - before.bytes_between_ranks) * per_step;
  const double whole = (after.rank_exchange_seconds - before.rank_exchange_seconds) * per_step;
  const double collective = (after.rank_collective_seconds - before.rank_collective_seconds) * per_step;
  const double bare_step = bare * per_step;
  RankFigures f;
  f.json = {{"ranks", ranks->size()}, {"exchanges_per_step", double(exchanges) * per_step}, {"bytes_sent_per_step", bytes},
            {"exchange_seconds_per_step", whole}, {"collective_seconds_per_step", collective},
            {"packing_seconds_per_step", whole - collective}, {"bare_collective_seconds_per_step", bare_step}};
  f.text = fmt::format("ranks    {} ranks, per decode step: {:.0f} exchanges, {} sent by rank 0, {:.3f} ms in them: the "
                       "collective {:.3f} ms (waiting for the slowest rank included), packing and placing rows {:.3f} ms; the "
                       "same exchanges through the bare collective, back to back: {:.3f} ms\n",
                       ranks->size(), double(exchanges) * per_step, format_bytes(uint64_t(bytes)), 1e3 * whole, 1e3 * collective,
                       1e3 * (whole - collective), 1e3 * bare_step);
  return f;
}

// Under mpirun with every expert resident on its rank's device: moe sim's figure for the same
// layout (expert e on device e % devices, each rank's results sent to every other rank) and the
// decode steps' routing as recorded, on this machine's profile measured now (each rank measures
// while the others do, so each gets its share of the cores and memory bus) with the ranks' link
// at the rate the bare collective reached in this run.
struct RankPrediction {
  nlohmann::json json;
  std::string text;
};
RankPrediction predict_ranks(const Flags& f, const OffloadFlags& o, const model::LoadedModel& m, const std::string& what,
                             const engine::Engine& session, const offload::TraceCollector& collector, const RankFigures& exchange) {
  placement::HardwareProfile profile = calibrate_this_machine();
  const int devices = session.runner()->devices();
  const double bytes = exchange.json.at("bytes_sent_per_step").get<double>();
  const double bare = exchange.json.at("bare_collective_seconds_per_step").get<double>();
  profile.gpu_count = devices;
  profile.peer_link = placement::PeerLink::kPcie;  // shared memory through MPI: only its rate matters to the model
  profile.peer_bandwidth = bytes > 0 && bare > 0 ? bytes / bare : profile.host_to_device_bandwidth;
  const placement::ModelShape shape = placement::model_shape(m.config, what);
  const placement::PlacementPlan plan = placement::resident_plan(shape, devices, 1, f.prompt_tokens + f.decode_tokens);
  placement::Trace decode = collector.trace();
  decode.tokens.erase(decode.tokens.begin(), decode.tokens.begin() + std::min<int64_t>(f.prompt_tokens, int64_t(decode.tokens.size())));
  placement::SimOptions sim = sim_options(o, sim_predictor("none"), nullptr, m.config);
  sim.exchange = "results-to-all";
  const placement::SimResult r = placement::simulate(plan, decode, placement::CostModel(shape, profile), sim);
  const double exchange_per_step = r.steps ? r.communication_seconds / double(r.steps) : 0.0;
  RankPrediction p;
  p.json = {{"predicted_tokens_per_second", r.tokens_per_second()},
            {"predicted_communication_seconds_per_step", exchange_per_step},
            {"link_bytes_per_second", profile.peer_bandwidth},
            {"exchange", sim.exchange}};
  p.text = fmt::format("predict  moe sim of the same layout (every expert resident on device e % {}, results to every rank), this "
                       "machine measured now, the ranks' link at the bare collective's {:.2f} GB/s: {:.1f} tokens/s, of which the "
                       "exchange {:.3f} ms a step\n",
                       devices, profile.peer_bandwidth / 1e9, r.tokens_per_second(), 1e3 * exchange_per_step);
  return p;
}

std::vector<int> parse_batches(const std::string& list) {
  std::vector<int> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    size_t used = 0;
    int b = 0;
    try {
      b = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MOE_CHECK(used == item.size() && b >= 1 && b <= 4096, ErrorCode::kInvalidArgument,
              "--batch takes sizes from 1 to 4096, comma-separated; not \"{}\"", item);
    out.push_back(b);
  }
  MOE_CHECK(!out.empty(), ErrorCode::kInvalidArgument, "--batch needs at least one size");
  return out;
}

// Aggregate decode tokens/s per batch size beside the ceilings of a step (its weight reads at the
// read bandwidth, its FLOPs at the FMA peak); with one --gpu-mem budget, the same batch offloaded
// too: its copies per generated token, hit rate and the bound of the link they cross, beside the
// resident rate.
void run_batches(const Flags& f, model::LoadedModel& m, const std::string& what) {
  const std::vector<int> batches = parse_batches(f.batches);
  MOE_CHECK(f.budgets.find(',') == std::string::npos, ErrorCode::kInvalidArgument, "--batch takes one --gpu-mem budget");
  MOE_CHECK(f.budgets.empty() || f.budgets == "all" || parse_byte_size(f.budgets) > 0, ErrorCode::kInvalidArgument,
            "--gpu-mem takes a size (e.g. 64MiB) or 'all'; not \"{}\"", f.budgets);
  const bool offloaded = !f.budgets.empty();
  MOE_CHECK(!f.predict || offloaded, ErrorCode::kInvalidArgument, "--predict with --batch needs one --gpu-mem budget");
  const double read = cpu::measure_read_bandwidth(cpu::ThreadPool::global());
  const double peak = cpu::measure_fma_peak(cpu::ThreadPool::global());
  std::optional<placement::HardwareProfile> profile;
  if (f.predict) profile = calibrate_this_machine();
  const std::optional<placement::Trace> learnt_from = profile_trace_for_sim(f);
  double link = 0;
  if (offloaded) {
#if MOE_HAVE_CUDA
    if (f.offload.backend == "cuda") link = offload::host_to_device_bandwidth(0);
#endif
    if (link == 0) link = cpu::measure_memcpy_bandwidth();
  }
  if (!f.json) {
    fmt::print("batched decode {} ({} prompt + {} decode tokens a sequence); ceilings measured now: read {:.2f} GB/s, FMA "
               "peak {:.1f} GFLOP/s{}\n",
               what, f.prompt_tokens, f.decode_tokens, read / 1e9, peak / 1e9,
               offloaded ? fmt::format(", link {:.2f} GB/s", link / 1e9) : "");
    fmt::print("{:>6} {:>10} {:>10} {:>6} {:>9} {:>10}", "batch", "tok/s", "ceiling", "ratio", "KV/token", "KV theory");
    if (offloaded) fmt::print(" | {:>9} {:>9} {:>11} {:>10} {:>6} {:>7}", "offl tok/s", "hit rate", "copied/tok", "link bound",
                              "ratio", "vs res.");
    if (profile) fmt::print("  {:>9} {:>6}", "predicted", "error");
    fmt::print("\n");
  }
  {
    // Untimed: the largest batch once, so every weight it touches is in memory (synthetic
    // weights are made on first use, a checkpoint's pages faulted in) before any row is timed.
    engine::BatchDecodeOptions warm;
    warm.batch = *std::max_element(batches.begin(), batches.end());
    warm.prompt_tokens = f.prompt_tokens;
    warm.decode_steps = 1;
    warm.measure_ceilings = false;
    engine::run_batched_decode(*m.transformer, warm);
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const int batch : batches) {
    engine::BatchDecodeOptions o;
    o.batch = batch;
    o.prompt_tokens = f.prompt_tokens;
    o.decode_steps = f.decode_tokens;
    o.kv_block_tokens = f.kv_block;
    o.measure_ceilings = false;
    OffloadFlags resident = f.offload;
    resident.gpu_mem.clear();
    resident.auto_tiers = false;  // the rows compare the budgets given, not a split of their own
    resident.context = int64_t(batch) * (f.prompt_tokens + f.decode_tokens + 1);
    engine::BatchDecodeResult r;
    {
      engine::Engine session(m, resident, what);
      r = engine::run_batched_decode(*m.transformer, o);
    }
    r.read_bandwidth = read;
    r.fma_peak = peak;
    nlohmann::json row = {{"batch", batch}, {"tokens_per_second", r.tokens_per_second}, {"ceiling_tokens_per_second", r.bound()},
                          {"bandwidth_bound", r.bandwidth_bound()}, {"compute_bound", r.compute_bound()}, {"ratio", r.ratio()},
                          {"experts_per_step", r.experts_per_step}, {"weight_bytes_per_step", r.weight_bytes_per_step},
                          {"kv_bytes_per_token", r.kv_bytes_per_token},
                          {"kv_theoretical_bytes_per_token", r.kv_theoretical_bytes_per_token}, {"kv_slack", r.kv_slack()}};
    if (!f.json)
      fmt::print("{:>6} {:>10.1f} {:>10.1f} {:>6.2f} {:>9.0f} {:>10.0f}", batch, r.tokens_per_second, r.bound(), r.ratio(),
                 r.kv_bytes_per_token, r.kv_theoretical_bytes_per_token);
    if (offloaded) {
      OffloadFlags off = f.offload;
      off.gpu_mem = f.budgets != "all" ? f.budgets : off.backend == "cuda" ? "" : "1TiB";
      off.context = resident.context;
      off.auto_tiers = false;
      engine::Engine session(m, off, what);
      offload::TraceCollector collector(m.config, m.transformer->routing_hook(), m.transformer.get());
      m.transformer->set_routing_hook(collector.hook());
      const SimPredictor replay = sim_predictor(off.prefetch);
      std::optional<GuessRecording> recording;
      if (profile) recording.emplace(*m.transformer, collector, replay, engine_guesses(off, m.config));
      offload::OffloadStats before;
      o.on_decode_start = [&] { before = session.runner()->stats(); };
      const engine::BatchDecodeResult d = engine::run_batched_decode(*m.transformer, o);
      const offload::OffloadStats after = session.runner()->stats();
      recording.reset();
      double predicted = 0;
      bool predicted_is_bound = false;
      if (profile) {
        // The same decode steps in the simulator: a cache-only plan of the same slots stepping
        // `batch` tokens at a time, the steps' routing as recorded (the prefill step left out).
        const placement::ModelShape shape = placement::model_shape(m.config, what);
        const auto plan = placement::cache_only_plan(shape, off.devices, session.runner()->cache_slots(session.runner()->first_device()),
                                                     int64_t(parse_byte_size(off.host_mem)), 1, off.context);
        placement::Trace decode = collector.trace();
        decode.tokens.erase(decode.tokens.begin(), decode.tokens.begin() + int64_t(batch) * f.prompt_tokens);
        placement::SimOptions sim = sim_options(off, replay, learnt_from ? &*learnt_from : nullptr, m.config);
        sim.batch = batch;  // as `moe sim --batch`
        predicted = placement::simulate(plan, decode, placement::CostModel(shape, *profile), sim).tokens_per_second();
        predicted_is_bound = replay.bound;
      }
      const double generated = double(batch) * f.decode_tokens;
      const double copied = double(after.bytes_host_to_device - before.bytes_host_to_device) / generated;
      const uint64_t uses = after.offloaded_uses - before.offloaded_uses, hits = after.cache_hits - before.cache_hits;
      const double hit = uses ? double(hits) / double(uses) : 1.0;
      const double bound = copied > 0 ? link / copied : 0;
      row["offloaded"] = {{"gpu_mem", f.budgets}, {"tokens_per_second", d.tokens_per_second}, {"cache_hit_rate", hit},
                          {"bytes_copied_per_token", copied}, {"link_bytes_per_second", link},
                          {"link_bound_tokens_per_second", bound}, {"ratio", bound > 0 ? d.tokens_per_second / bound : 0},
                          {"vs_resident", d.tokens_per_second / r.tokens_per_second},
                          {"predicted_tokens_per_second", predicted}, {"predicted_is_bound", predicted_is_bound},
                          {"stats", session.stats_json()}};
      if (!f.json)
        fmt::print(" | {:>10.1f} {:>8.1f}% {:>11} {:>10.1f} {:>6.2f} {:>7.2f}", d.tokens_per_second, 100 * hit,
                   format_bytes(uint64_t(copied)), bound, bound > 0 ? d.tokens_per_second / bound : 0.0,
                   d.tokens_per_second / r.tokens_per_second);
      if (!f.json && profile)
        fmt::print("  {:>9.1f}{} {:>+5.0f}%", predicted, predicted_is_bound ? "*" : " ", 100 * (predicted / d.tokens_per_second - 1));
    }
    if (!f.json) {
      fmt::print("\n");
      std::fflush(stdout);
    }
    rows.push_back(row);
  }
  if (f.json)
    print_json({{"benchmark", "decode-batch"}, {"model", what}, {"prompt_tokens", f.prompt_tokens},
                {"decode_tokens", f.decode_tokens}, {"read_bytes_per_second", read}, {"fma_peak_flops_per_second", peak},
                {"rows", rows}});
}

// Decode under each expert budget: tokens/s beside the bound its own copies imply (bytes copied
// per token over the memcpy bandwidth measured in the same run).
void run_budgets(const Flags& f, model::LoadedModel& m, const std::string& what) {
  std::vector<std::string> budgets;
  std::stringstream list(f.budgets);
  for (std::string b; std::getline(list, b, ',');) {
    MOE_CHECK(b == "all" || (!b.empty() && parse_byte_size(b) > 0), ErrorCode::kInvalidArgument,
              "--gpu-mem takes sizes (e.g. 64MiB) or 'all', comma-separated; not \"{}\"", b);
    budgets.push_back(b);
  }
  MOE_CHECK(!budgets.empty(), ErrorCode::kInvalidArgument, "--gpu-mem needs at least one budget");
  nlohmann::json rows = nlohmann::json::array();
  std::optional<placement::HardwareProfile> profile;
  if (f.predict) profile = calibrate_this_machine();
  const std::optional<placement::Trace> learnt_from = profile_trace_for_sim(f);
  double h2d = 0;  // the GPUs' link, when experts are copied to one
#if MOE_HAVE_CUDA
  if (f.offload.backend == "cuda") h2d = offload::host_to_device_bandwidth(0);
#endif
  if (!f.json)
    fmt::print("decode {} ({} prompt + {} decode tokens)\n{:>10} {:>9} {:>9} {:>8} {:>12} {:>12} {:>6}{}\n", what, f.prompt_tokens,
               f.decode_tokens, "gpu-mem", "tok/s", "hit rate", "stall s", "copied/tok", "link bound", "ratio",
               f.predict ? "  predicted  error" : "");
  if (!f.json && !m.quantization.empty()) fmt::print("{}\n", m.quantization.describe());
  std::string details;  // each run's engine statistics (where its experts came from, what stayed on the CPU), after the table
  for (const std::string& budget : budgets) {
    OffloadFlags o = f.offload;
    // "all": every expert fits (the offloading path's own overhead); on a GPU, all it has free.
    o.gpu_mem = budget != "all" ? budget : o.backend == "cuda" ? "" : "1TiB";
    o.context = f.prompt_tokens + f.decode_tokens + 1;
    o.auto_tiers = false;
    engine::Engine session(m, o, what);
    offload::TraceCollector collector(m.config, m.transformer->routing_hook(), m.transformer.get());
    m.transformer->set_routing_hook(collector.hook());
    const SimPredictor replay = sim_predictor(o.prefetch);
    std::optional<GuessRecording> recording;
    if (profile) recording.emplace(*m.transformer, collector, replay, engine_guesses(o, m.config));
    offload::OffloadStats at_decode;
    const model::DecodeBenchmark b = model::run_decode_benchmark(*m.transformer, f.prompt_tokens, f.decode_tokens, false, nullptr, [&] {
      at_decode = session.runner()->stats();
      if (auto* ranks = session.runner()->ranks()) ranks->start_recording();
    });
    const std::optional<RankFigures> exchange = rank_figures(session, at_decode, f.decode_tokens);
    const offload::OffloadStats s = session.runner()->stats();
    recording.reset();
    double predicted = 0;
    if (profile) {
      // The same run in the simulator: a cache-only plan of the same slots, the decode steps'
      // routing as recorded.
      const placement::ModelShape shape = placement::model_shape(m.config, what);
      const auto plan = placement::cache_only_plan(shape, o.devices, session.runner()->cache_slots(session.runner()->first_device()),
                                                   int64_t(parse_byte_size(o.host_mem)), 1, f.prompt_tokens + f.decode_tokens);
      placement::Trace decode = collector.trace();
      decode.tokens.erase(decode.tokens.begin(), decode.tokens.begin() + f.prompt_tokens);
      const placement::SimOptions sim = sim_options(o, replay, learnt_from ? &*learnt_from : nullptr, m.config);
      predicted = placement::simulate(plan, decode, placement::CostModel(shape, *profile), sim).tokens_per_second();
    }
    const double tokens = double(b.prompt_tokens + b.decode_tokens);
    const double copied = double(s.bytes_host_to_device) / tokens;
    const double link = h2d > 0 ? h2d : b.memcpy_bandwidth;
    const double bound = copied > 0 ? link / copied : 0;
    const double hit = s.offloaded_uses ? double(s.cache_hits) / double(s.offloaded_uses) : 1.0;
    rows.push_back({{"gpu_mem", budget}, {"gpu_mem_bytes", parse_byte_size(o.gpu_mem)}, {"decode_tokens_per_second", b.decode_tokens_per_second},
                    {"cache_hit_rate", hit}, {"stall_seconds", s.stall_seconds}, {"bytes_copied_per_token", copied},
                    {"link_bound_tokens_per_second", bound}, {"memcpy_bytes_per_second", b.memcpy_bandwidth},
                    {"link_bytes_per_second", link}, {"link", h2d > 0 ? "pinned host-to-device copy" : "memcpy"},
                    {"predicted_tokens_per_second", predicted}, {"predicted_is_bound", replay.bound},
                    {"stats", session.stats_json()}});
    if (exchange) rows.back()["rank_exchange"] = exchange->json;
    if (!f.json)
      fmt::print("{:>10} {:>9.1f} {:>8.1f}% {:>8.3f} {:>12} {:>12.1f} {:>6.2f}{}\n", budget, b.decode_tokens_per_second, 100 * hit,
                 s.stall_seconds, format_bytes(uint64_t(copied)), bound, bound > 0 ? b.decode_tokens_per_second / bound : 0.0,
                 profile ? fmt::format(" {:>10.1f}{} {:>+5.0f}%", predicted, replay.bound ? "*" : " ",
                                       100 * (predicted / b.decode_tokens_per_second - 1))
                         : "");
    if (!f.json && exchange) fmt::print("{}", exchange->text);
    details += fmt::format("--gpu-mem {}:\n{}", budget, session.stats_text());
  }
  if (!f.json) fmt::print("{}", details);
  if (f.json) print_json({{"benchmark", "decode-budgets"}, {"model", what}, {"rows", rows}});
  else if (profile && sim_predictor(f.offload.prefetch).bound)
    fmt::print("* the simulator cannot replay --prefetch {}: the trace oracle stands in, so the prediction is a bound\n",
               f.offload.prefetch);
}

void run(const Flags& f) {
  MOE_CHECK(!f.shared_expert_bytes || !f.config.empty(), ErrorCode::kInvalidArgument,
            "--shared-expert-bytes applies to synthetic weights: give --config");
  MOE_CHECK(f.layers == 0 || !f.config.empty(), ErrorCode::kInvalidArgument, "--layers applies to --config shapes");
  start_ranks(f.offload);  // under mpirun: a plan that does not fit the ranks is refused before any weight is read
  const offload::ProcessGroup* group = offload::process_group();
  MOE_CHECK(!f.predict || !f.budgets.empty() || !f.batches.empty() || (group && group->size() > 1), ErrorCode::kInvalidArgument,
            "--predict needs --gpu-mem (a budget to simulate) or mpirun (the ranks' exchange to simulate)");
  model::LoadedModel m;
  std::string what;
  offload::on_every_rank("load", [&] {
    if (!f.config.empty()) {
      const auto config = f.layers > 0 ? loading::load_model_config(f.config, f.layers) : loading::load_model_config(f.config);
      m = model::load_model(config, std::make_shared<model::SyntheticWeights>(config, 1, f.shared_expert_bytes),
                            f.offload.load_options());
      what = f.config + (f.layers > 0 ? fmt::format(" (first {} layers)", f.layers) : std::string()) +
             (f.shared_expert_bytes ? " (synthetic weights, experts sharing bytes)" : " (synthetic weights)");
    } else {
      const auto dir = f.model.empty() ? model::default_model_dir() : std::filesystem::path(f.model);
      m = model::load_model(dir, f.offload.load_options());
      what = f.model.empty() ? "default model" : f.model;
    }
  });
  if (!f.batches.empty()) return run_batches(f, m, what);
  if (!f.budgets.empty()) return run_budgets(f, m, what);
  OffloadFlags o = f.offload;
  o.context = f.prompt_tokens + f.decode_tokens + 1;
  engine::Engine session(m, o, what);
  explain_placement(session, o, f.json);
  std::optional<offload::TraceCollector> collector;  // --predict under mpirun: the decode steps' routing, for the simulator
  if (f.predict) {
    collector.emplace(m.config, m.transformer->routing_hook(), m.transformer.get());
    m.transformer->set_routing_hook(collector->hook());
  }
  const bool warm_up = session.runner() == nullptr && o.replay_trace.empty() && o.trace_out.empty();
  offload::OffloadStats at_decode;
  const model::DecodeBenchmark b = model::run_decode_benchmark(
      *m.transformer, f.prompt_tokens, f.decode_tokens, warm_up, session.logit_comparison(), [&] {
        if (!session.runner()) return;
        at_decode = session.runner()->stats();
        if (auto* ranks = session.runner()->ranks()) ranks->start_recording();
      });
  const std::optional<RankFigures> exchange = rank_figures(session, at_decode, f.decode_tokens);
  std::optional<RankPrediction> predicted;
  if (collector && exchange) predicted = predict_ranks(f, o, m, what, session, *collector, *exchange);
  if (f.json) {
    nlohmann::json doc = session.stats_json();
    doc.update(nlohmann::json{{"benchmark", "decode"},
                {"model", what},
                {"prompt_tokens", b.prompt_tokens},
                {"decode_tokens", b.decode_tokens},
                {"prefill_tokens_per_second", b.prefill_tokens_per_second},
                {"prefill_flops_per_second", b.prefill_flops_per_second},
                {"fma_peak_flops_per_second", b.fma_peak},
                {"prefill_ratio", b.prefill_ratio()},
                {"decode_tokens_per_second", b.decode_tokens_per_second},
                {"weight_bytes_per_token", b.bytes_per_token},
                {"achieved_bytes_per_second", b.achieved_bandwidth},
                {"memcpy_bytes_per_second", b.memcpy_bandwidth},
                {"read_bytes_per_second", b.read_bandwidth},
                {"read_ratio", b.read_ratio()},
                {"ratio", b.ratio()}});
    if (exchange) doc["rank_exchange"] = exchange->json;
    if (predicted) doc["rank_prediction"] = predicted->json;
    print_json(doc);
    return;
  }
  fmt::print("{}", session.stats_text());
  fmt::print("prefill  {} tokens: {:.1f} tokens/s, {:.1f} GFLOP/s of weight multiply-adds\n", b.prompt_tokens,
             b.prefill_tokens_per_second, b.prefill_flops_per_second / 1e9);
  fmt::print("ceiling  f32 FMA peak of all threads {:.1f} GFLOP/s (measured now): ratio {:.2f}\n", b.fma_peak / 1e9,
             b.prefill_ratio());
  fmt::print("decode   {}: {:.1f} tokens/s over {} tokens after a {}-token prompt\n", what, b.decode_tokens_per_second,
             b.decode_tokens, b.prompt_tokens);
  if (exchange) fmt::print("{}", exchange->text);
  if (predicted) fmt::print("{}", predicted->text);
  fmt::print("weights  {:.2f} MB read per token -> {:.2f} GB/s\n", b.bytes_per_token / 1e6, b.achieved_bandwidth / 1e9);
  fmt::print("ceiling  memcpy {:.2f} GB/s (measured now): ratio {:.2f}\n", b.memcpy_bandwidth / 1e9, b.ratio());
  fmt::print("         all threads reading {:.2f} GB/s (measured now): ratio {:.2f}\n", b.read_bandwidth / 1e9,
             b.read_ratio());
}

void setup(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  app.add_option("--model,-m", f->model, "model folder (default: the embedded model)");
  app.add_option("--config", f->config, "config.json of a shape to run with synthetic weights instead");
  app.add_option("--layers", f->layers, "with --config: keep only the first N decoder layers (a scaled-down shape)")
      ->check(whole_number(1, 4096));
  app.add_option("--prompt-tokens", f->prompt_tokens, "prompt length")->capture_default_str()->check(whole_number(1, 1 << 20));
  app.add_option("-n,--decode-tokens", f->decode_tokens, "decode steps timed")->capture_default_str()->check(whole_number(1, 1 << 20));
  app.add_flag("--json", f->json, "print one JSON document");
  app.add_flag("--shared-expert-bytes", f->shared_expert_bytes,
               "with --config: all experts share one buffer per tensor kind (a Mixtral-8x7B shape in a few GB; "
               "the same bytes move, the logits mean nothing: replay a trace)");
  app.add_option("--batch", f->batches,
                 "batch sizes, comma-separated (e.g. 1,4,16,64): that many sequences decoded together by the scheduler, "
                 "aggregate tokens/s beside the step's ceilings; with one --gpu-mem budget, offloaded too");
  app.add_option("--kv-block", f->kv_block, "with --batch: tokens per KV block")->capture_default_str()
      ->check(whole_number(int64_t{1}, int64_t{1} << 16));
  app.add_flag("--predict", f->predict, "with --gpu-mem (and --batch): also predict each run with moe sim on a profile measured now; under mpirun (every "
               "expert resident), the ranks' layout and exchange");
  add_offload_options(app, f->offload);
  app.remove_option(app.get_option("--gpu-mem"));
  app.add_option("--gpu-mem", f->budgets,
                 "budgets per device as --gpu-mem takes them, comma-separated (e.g. 64MiB,256MiB,all): one run each");
  app.callback([f] { run(*f); });
}

const CommandRegistration kBenchDecode("bench", "decode", "Decode speed beside the bound of its weight traffic (memory or link)", setup);

}  // namespace
}  // namespace moe::tools
