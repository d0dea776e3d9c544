#include "runtime/engine/engine.h"

#include <fmt/format.h>

#include "kernels/cpu/matmul.h"
#include "placement/cost/gpu_memory.h"
#include "placement/cost/model_shape.h"
#include "placement/plan/slot_split.h"
#include "placement/trace/importers.h"
#include "runtime/core/error.h"
#include "runtime/core/mapped_file.h"
#include "runtime/core/memory_limit.h"
#include "runtime/core/memory_usage.h"
#include "runtime/core/size_parse.h"
#include "offload/executor/process_group.h"
#include "runtime/engine/rank_layout.h"
#include "runtime/engine/weight_report.h"
#include "runtime/model/synthetic_weights.h"
#include "runtime/model/weight_walk.h"
#if MOE_HAVE_CUDA
#include "kernels/cuda/device.h"
#include "offload/gpu/cuda_expert_device.h"
#include "offload/gpu/nccl_communicator.h"
#include "offload/gpu/nccl_rank_communicator.h"
#include "runtime/cuda/cuda_attention.h"
#include "runtime/cuda/cuda_linear.h"
#include "runtime/cuda/device_arena.h"
#endif

namespace moe::engine {
namespace {

// What the KV cache keeps per token (f32, every layer) for multi-head latent attention, and
// what full K/V of every head would take.
std::pair<uint64_t, uint64_t> mla_kv_bytes_per_token(const loading::ModelConfig& c) {
  const uint64_t latent = model::KvBlockPool::token_bytes(c.num_layers, c.head_dim, c.kv_values_stored());
  const uint64_t full =
      sizeof(float) * uint64_t(c.num_layers) * uint64_t(c.num_heads) * uint64_t(c.mla.qk_head_dim() + c.mla.v_head_dim);
  return {latent, full};
}

}  // namespace

std::unique_ptr<Scheduler> Engine::make_scheduler(uint64_t kv_bytes, int64_t kv_block_tokens, const SchedulerOptions& options) {
  const loading::ModelConfig& c = model_.config;
  const int64_t row = int64_t{c.kv_cache_heads()} * c.head_dim;
  const int64_t blocks = model::KvBlockPool::blocks_within(kv_bytes, c.num_layers, row, kv_block_tokens, c.kv_values_stored());
  return std::make_unique<Scheduler>(*model_.transformer, model_.transformer->make_kv_pool(kv_block_tokens, blocks), options);
}

namespace {

// Routed experts the process holds in its own memory whatever the tiers do (converted at load
// by --weights, or generated): offloading them would add copies and free nothing.
const char* experts_in_process_memory(const model::LoadedModel& m) {
  if (dynamic_cast<const model::SyntheticWeights*>(m.source.get())) return "generated (synthetic weights)";
  for (const model::QuantizedPart& p : m.quantization.parts)
    if (p.part == "experts" && p.origin == "converted at load") return "converted at load by --weights";
  for (const model::LayerWeights& l : m.transformer->weights().layers)
    if (l.moe.gpt_oss.gate_up.defined() && !l.moe.gpt_oss.mxfp4()) return "gpt-oss's bf16 experts, transposed at load";
  return nullptr;
}

}  // namespace

std::optional<TierChoice> Engine::choose_automatic_tiers(const EngineOptions& f) {
  const bool cuda = f.backend == "cuda";
  if (f.mem_limit == "none") return std::nullopt;  // the user asks for the weights in place (or the hand budgets)
  if (offload::process_count() > 1) {  // the split is one process's; under mpirun the flags decide
    MOE_CHECK(f.mem_limit.empty(), ErrorCode::kUnsupported,
              "--mem-limit splits one process's memory: under mpirun give --gpu-mem (and --host-mem) per rank");
    return std::nullopt;
  }
  if (!f.auto_tiers || (cuda ? !f.plan.empty() || f.host_mem != "0" : f.hand_budgets())) {
    MOE_CHECK(f.mem_limit.empty(), ErrorCode::kInvalidArgument,
              "--mem-limit chooses the split itself: give it without {}", cuda ? "--host-mem and --plan" : "--gpu-mem, --host-mem and --plan");
    return std::nullopt;
  }
  const loading::ModelConfig& c = model_.config;
  const model::Transformer& t = *model_.transformer;
  TierInputs in;
  if (!f.mem_limit.empty()) {
    in.limit = parse_byte_size(f.mem_limit);
    in.limit_source = "--mem-limit";
    in.limit_given = true;
  } else {
    const MemoryLimit found = detect_memory_limit();
    in.limit = found.bytes;
    in.limit_source = found.source;
  }
  const model::MatrixTotals totals = model::matrix_totals(t.weights(), c);
  const model::ModelWeights& w = t.weights();
  const bool tied = w.lm_head.weight.defined() && w.lm_head.weight.raw() == w.embed_tokens.raw();
  in.dense_bytes = uint64_t(totals.resident_bytes) + (tied ? 0 : w.embed_tokens.nbytes());
  in.experts = int64_t(c.num_sparse_layers()) * c.num_experts;
  std::string not_offloadable = in.experts > 0 ? "" : "no routed experts: nothing to offload";
  if (not_offloadable.empty() && in.experts > 0) {
    try {
      const offload::ExpertLayout layout = offload::ExpertBacking(w, nullptr).layout();
      in.expert_bytes = layout.bytes;
      // The CPU devices compute every activation (and DS-MoE's GeLU form); the GPU kernels SwiGLU and the GeLU form.
      if (cuda && layout.gate.bytes > 0 && c.activation != cpu::Activation::kSilu)
        not_offloadable = "the experts' activation is not SiLU and the GPU expert kernels compute SwiGLU only: the model runs in place";
    } catch (const Error& e) {
      not_offloadable = fmt::format("the experts cannot be offloaded ({}): the model runs in place", e.what());
    }
  }
  in.sparse_layers = c.num_sparse_layers();
  in.streamed_per_layer = std::min<int64_t>(c.num_experts, int64_t(std::max(c.num_experts_per_tok, 1)) * std::max<int64_t>(f.batch, 1));
  in.kv_bytes = uint64_t(std::max<int64_t>(f.context, 1)) *
                model::KvBlockPool::token_bytes(c.num_layers, int64_t{c.kv_cache_heads()} * c.head_dim, c.kv_values_stored());
  // The anonymous pages now (the CUDA libraries' relocated data, the tokenizer) and a working
  // set of code pages; the rest of the resident set is mapped files the kernel can reclaim.
  const uint64_t anonymous = anonymous_resident_bytes();
  const uint64_t baseline = (anonymous ? anonymous : current_resident_bytes()) + (uint64_t(32) << 20);
  in.runtime_bytes = runtime_estimate(baseline, std::min<int64_t>(f.context, 512), c.hidden_size,
                                      std::max(c.intermediate_size, c.moe_intermediate_size), c.num_heads, f.context);
  in.devices = f.devices;
  in.from_store = dynamic_cast<const offload::StoreWeightSource*>(model_.source.get()) != nullptr;
  in.cuda = cuda;
  TierChoice choice;
  if (!not_offloadable.empty()) {
    choice.why = {fmt::format("memory limit {} ({})", format_bytes(in.limit), in.limit_source), not_offloadable};
  } else if (const char* held = experts_in_process_memory(model_); held && !cuda) {
    choice.why = {fmt::format("memory limit {} ({})", format_bytes(in.limit), in.limit_source),
                  fmt::format("the routed experts are {} and live in the process's memory already: offloading them would "
                              "free nothing, so the model runs in place (`moe pack --formats` makes a store to offload)", held)};
  } else {
    choice = choose_tiers(in);
  }
  if (!choice.offload && (f.prefetch != "none" || f.miss != "wait"))
    choice.why.push_back("--prefetch and --miss have nothing to do: no expert is offloaded");
  placement_ = {{"limit_bytes", in.limit}, {"limit_source", in.limit_source}, {"offload", choice.offload},
                {"dense_bytes", in.dense_bytes}, {"expert_bytes", in.expert_bytes}, {"experts", in.experts},
                {"kv_bytes", in.kv_bytes}, {"runtime_bytes", in.runtime_bytes},
                {"device_expert_bytes", choice.device_bytes}, {"host_pool_bytes", choice.host_bytes},
                {"streaming_bytes", choice.streaming_bytes}, {"why", choice.why}};
  return choice;
}

// The automatic tiers given routing statistics: the slots split between the trace's hottest
// experts, pinned, and a cache, as held-out routing says is best (placement/plan/slot_split.h).
void Engine::pin_from_routing(const EngineOptions& f, offload::OffloadOptions& o) {
  const uint64_t expert = placement_["expert_bytes"].get<uint64_t>();
  const int slots = int(o.device_bytes / std::max<uint64_t>(expert, 1));
  placement::SimOptions sim;
  sim.policy = f.policy;
  sim.admission = f.admission;
  try {
    placement::SlotSplit split =
        placement::choose_slot_split(placement::model_shape(model_.config, ""), profile_, o.devices, slots, sim);
    for (const std::string& line : split.why) placement_["why"].push_back("routing " + f.profile_trace + ": " + line);
    placement_["pinned_per_device"] = split.pinned_per_device;
    placement_["held_out_hit_rate"] = split.held_out_hit_rate;
    plan_ = std::move(split.plan);
    o.plan = &plan_;
  } catch (const Error& e) {
    placement_["why"].push_back(fmt::format("routing {} not used for pinning: {}", f.profile_trace, e.what()));
  }
}

// In place under a limit the model exceeds, a layer's chosen experts are partly on disk: asking
// for all their pages as soon as the router has chosen turns one fault per 128 KiB into large
// asynchronous reads that overlap the first expert's compute. With --prefetch, the experts the
// predictor guesses for later layers are asked for too, a layer or more before their router runs,
// so that their reads overlap this layer's compute (a wrong guess costs disk reads, not bits).
void Engine::read_chosen_experts_ahead(const EngineOptions& f) {
  model::Transformer& t = *model_.transformer;
  const auto read_expert = [&t](int layer, int32_t e) {
    const auto& experts = t.weights().layers[size_t(layer)].moe.experts;
    if (e < 0 || size_t(e) >= experts.size()) return;
    for (const model::Linear* m : {&experts[size_t(e)].gate, &experts[size_t(e)].up, &experts[size_t(e)].down})
      if (m->weight.defined()) MappedFile::read_ahead(m->weight.raw(), m->weight.nbytes());
  };
  t.set_routing_hook([previous = t.routing_hook(), read_expert, &t](int layer, std::span<const int64_t> positions,
                                                                    model::RoutingDecision& d) {
    if (previous) previous(layer, positions, d);
    std::vector<bool> seen(t.weights().layers[size_t(layer)].moe.experts.size(), false);
    for (const int32_t e : d.experts)
      if (e >= 0 && size_t(e) < seen.size() && !seen[size_t(e)]) {
        seen[size_t(e)] = true;
        read_expert(layer, e);
      }
  });
  std::shared_ptr<offload::Predictor> predictor =
      offload::make_predictor(f.prefetch, t, f.profile_trace.empty() ? nullptr : &profile_, f.prefetch_guesses);
  if (!predictor) return;
  placement_["why"].push_back("the experts --prefetch " + f.prefetch + " guesses for later layers are read ahead too");
  t.set_expert_input_hook([predictor, read_expert](int layer, const float* x, int64_t n, const model::RoutingDecision& d) {
    for (const offload::ExpertKey& key : predictor->predict(layer, x, n, d)) read_expert(key.layer, key.expert);
  });
}

std::string Engine::placement_text() const {
  if (placement_.empty()) return "[placement: as the budget flags say]\n";
  std::string out = "[placement:";
  for (const auto& line : placement_["why"]) out += "\n  " + line.get<std::string>();
  return out + "]\n";
}

Engine::Engine(model::LoadedModel& model, const EngineOptions& f, const std::string& model_name) : model_(model) {
  model::Transformer& t = *model.transformer;
  MOE_CHECK(f.trace_out.empty() || f.replay_trace.empty(), ErrorCode::kInvalidArgument,
            "--trace-out and --replay-trace cannot be combined");
  if (!f.replay_trace.empty()) {
    replayer_ = std::make_unique<offload::TraceReplayer>(placement::load_any_trace(f.replay_trace), model.config);
    t.set_routing_hook(replayer_->hook());
  }
  if (!f.trace_out.empty()) {
    recorder_ = std::make_unique<offload::TraceRecorder>(f.trace_out, model.config, model_name, "moe " + model_name);
    t.set_routing_hook(recorder_->hook());
  }
  t.set_routing_mode(model::parse_routing_mode(f.routing));
  routing_ = f.routing;
  // Count the experts each token really uses (they vary under threshold routing).
  routed_ = std::make_shared<std::pair<int64_t, int64_t>>(0, 0);
  t.set_routing_hook([previous = t.routing_hook(), routed = routed_](int layer, std::span<const int64_t> positions,
                                                                      model::RoutingDecision& d) {
    if (previous) previous(layer, positions, d);
    routed->first += d.num_tokens();
    routed->second += d.num_assignments();
  });
  const std::optional<TierChoice> tiers = choose_automatic_tiers(f);
  offload::ProcessGroup* group = offload::process_group();
  if (group) group->set_timeout(f.rank_timeout);
  const bool ranked = group && group->size() > 1;  // experts sharded over the ranks' devices
  if (!f.offloading() && !ranked && !(tiers && tiers->offload)) {
    MOE_CHECK((f.prefetch == "none" && f.miss == "wait") || tiers, ErrorCode::kInvalidArgument,
              "--prefetch and --miss need offloading (--gpu-mem, --plan or --devices)");
    if (tiers && !tiers->read_ahead && f.prefetch != "none")
      placement_["why"].push_back("--prefetch " + f.prefetch + " has nothing to do: every weight stays in memory");
    if (!f.profile_trace.empty()) profile_ = placement::load_any_trace(f.profile_trace);
    if (tiers && tiers->read_ahead) read_chosen_experts_ahead(f);
    return;
  }
  offload::OffloadOptions o;
  o.devices = f.devices;
  o.policy = f.policy;
  o.admission = f.admission;
  o.miss = f.miss;
  o.hobbit_t1 = f.hobbit_t1;
  o.hobbit_t2 = f.hobbit_t2;
  o.host_bytes = parse_byte_size(f.host_mem);
  if (!f.plan.empty()) {
    plan_ = placement::load_plan(f.plan);
    o.plan = &plan_;
  }
  const RankLayout layout = rank_layout(f.devices, o.plan, ranked ? group->size() : 1, ranked ? group->rank() : 0);
  o.devices = layout.devices();
  o.local_devices = layout.local_devices;
  const int first_device = layout.rank * layout.local_devices;
  local_devices_ = layout.local_devices;
  if (const auto* store = dynamic_cast<const offload::StoreWeightSource*>(model.source.get())) o.store = store->store();
  o.device_bytes = f.gpu_mem.empty() ? uint64_t(1) << 62 : parse_byte_size(f.gpu_mem);
  if (tiers && tiers->offload) {
    if (f.backend == "cuda") o.host_bytes = tiers->host_bytes;
    else o.device_bytes = tiers->device_bytes;
    o.release_read_pages = true;
  }
  if (!f.profile_trace.empty()) profile_ = placement::load_any_trace(f.profile_trace);
  if (tiers && tiers->offload && f.backend != "cuda" && !f.profile_trace.empty()) pin_from_routing(f, o);
  if (f.backend == "cuda") {
#if MOE_HAVE_CUDA
    // This rank's GPUs: the ranks of one node take its GPUs in turn.
    const int first_gpu = ranked ? group->node_rank() * layout.local_devices : 0;
    // One arena per GPU for the budget: GPU 0 holds the resident dense weights and the KV mirror
    // too; the expert cache of every GPU gets what is left (placement/cost/gpu_memory.h).
    uint64_t budget = o.device_bytes;
    if (f.gpu_mem.empty()) {  // what every GPU has free, less 1 GiB for the CUDA context, cuBLAS and NCCL
      budget = UINT64_MAX;
      for (int d = 0; d < layout.local_devices; ++d) budget = std::min(budget, cuda::free_memory(first_gpu + d));
      budget = budget > (uint64_t(1) << 30) ? budget - (uint64_t(1) << 30) : 0;
    }
    const placement::ModelShape shape = placement::model_shape(model.config, "");
    const offload::ExpertLayout expert = offload::ExpertBacking(t.weights(), nullptr).layout();  // as the executor cuts them
    MOE_CHECK(expert.gate.bytes == 0 || model.config.activation == cpu::Activation::kSilu, ErrorCode::kUnsupported,
              "the GPU expert kernels compute SwiGLU (and DS-MoE's GeLU experts) only: this model's gated experts use another "
              "activation, so offload them with --backend cpu or run the model in place");
    const uint64_t slot = expert.bytes;
    const placement::GpuMemorySplit split = placement::split_gpu_memory(shape, budget, f.context, slot);
    std::vector<cuda::DeviceArena*> arenas;
    for (int d = 0; d < layout.local_devices; ++d) {
      arenas_.push_back(std::make_shared<cuda::DeviceArena>(first_gpu + d, split.arena(d)));  // each rank runs the dense part on its first GPU
      arenas.push_back(arenas_.back().get());
    }
    gpu_split_ = fmt::format("budget {}: dense weights {}, KV cache {} ({} tokens), scratch {}, experts {}", format_bytes(budget),
                             format_bytes(split.dense), format_bytes(split.kv), f.context, format_bytes(split.scratch),
                             format_bytes(split.experts));
    o.device_bytes = split.experts;
    o.make_device = [local = offload::cuda_expert_devices(std::move(arenas)), first_device](int d, const offload::ExpertLayout& l) {
      return local(d - first_device, l);  // the executor numbers every rank's devices
    };
    o.make_communicator = [](int devices) { return std::make_unique<offload::NcclCommunicator>(devices); };
    if (ranked) o.ranks = std::make_shared<offload::NcclRankCommunicator>(*group, first_gpu);
    // Attention's projections, dense and shared MLPs and the LM head resident on GPU 0, and
    // attention over a device copy of the KV cache, both in GPU 0's arena.
    linear_ = std::make_unique<cuda::CudaLinear>(*arenas_.front());
    t.set_linear_backend(linear_.get());
    attention_ = std::make_unique<cuda::CudaAttention>(*arenas_.front());
    t.set_attention_backend(attention_.get());
#else
    fail(ErrorCode::kUnsupported, "--backend cuda: this build has no CUDA backend (nvcc was not found when it was built)");
#endif
  }
  if (ranked && !o.ranks) o.ranks = group->make_communicator();
  runner_ = std::make_unique<offload::OffloadedExperts>(t, o, offload::make_predictor(f.prefetch, t, f.profile_trace.empty() ? nullptr : &profile_, f.prefetch_guesses));
  t.set_expert_runner(runner_.get());
  summary_ = fmt::format("{}{} {} device(s) x {} cache slots of {} ({} experts{}), host pool {}, policy {} (admission {}), prefetch {}, miss {}",
                         tiers && tiers->offload ? "automatic (--explain says why): " : "", f.backend, o.devices, runner_->cache_slots(first_device), format_bytes(runner_->expert_bytes()),
                         runner_->expert_format(), runner_->experts_from_store() ? " read from the store" : "",
                         format_bytes(o.host_bytes), o.policy, o.admission, f.prefetch, o.miss);
}

Engine::~Engine() {
  model_.transformer->set_linear_backend(nullptr);
  model_.transformer->set_attention_backend(nullptr);
  model_.transformer->set_expert_runner(nullptr);
  model_.transformer->set_routing_hook({});
  model_.transformer->set_routing_mode({});
}

namespace {
// Parameters a token touches: everything but the routed experts (attention counted whole: its
// projections run for every head), plus the routed experts it uses per layer.
double active_parameters(const loading::ModelConfig& c, double experts_per_token_layer) {
  const placement::ModelShape shape = placement::model_shape(c, "");
  return double(shape.dense_params) + experts_per_token_layer * c.num_sparse_layers() * double(shape.expert_params);
}
}  // namespace

model::LogitComparison* Engine::logit_comparison() {
  const bool lossy_activations = cpu::activations() != cpu::Activations::kExact;
  if ((model_.quantization.empty() && !lossy_activations) || replayer_) return nullptr;
  if (!comparison_) {
    reference_ = std::make_unique<model::LoadedModel>(model::load_model(model_.config, model_.source));
    reference_->transformer->set_routing_mode(model::parse_routing_mode(routing_));
    comparison_ = std::make_unique<model::LogitComparison>(*reference_->transformer);
  }
  return comparison_.get();
}

void Engine::begin_sequence(int64_t id) {
  if (recorder_) recorder_->begin_sequence(id);
}

void Engine::finish() {
  if (recorder_) recorder_->finish();
}

nlohmann::json Engine::gpu_json() const {
#if MOE_HAVE_CUDA
  if (const auto* linear = dynamic_cast<const cuda::CudaLinear*>(linear_.get())) {
    const auto* attention = dynamic_cast<const cuda::CudaAttention*>(attention_.get());
    return {{"device", cuda::describe_device(0)},
            {"memory", gpu_split_},
            {"arena_bytes", arenas_.front()->capacity()},
            {"arena_used_bytes", arenas_.front()->used()},
            {"expert_slot_bytes", uint64_t(runner_->cache_slots(0)) * runner_->expert_bytes()},
            {"resident_dense_bytes", linear->resident_bytes()},
            {"dense_products_on_cpu", linear->cpu_fallbacks()},
            {"kv_cache_bytes", attention ? attention->device_bytes() : 0},
            {"attention_steps_on_cpu", attention ? attention->cpu_fallbacks() : 0}};
  }
#endif
  return nlohmann::json::object();
}

nlohmann::json Engine::stats_json() const {
  nlohmann::json j = nlohmann::json::object();
  if (!model_.quantization.empty()) j["weights"] = quantization_json(model_.quantization);
  if (cpu::activations() != cpu::Activations::kExact) j["activations"] = cpu::activations_name(cpu::activations());
  if (comparison_ && comparison_->result().positions > 0) j["against_checkpoint"] = agreement_json(comparison_->result());
  if (routed_ && routed_->first > 0) {
    const double per = double(routed_->second) / double(routed_->first);
    j["routing"] = {{"mode", model_.transformer->effective_routing_mode().describe()},
                    {"experts_per_token_per_layer", per},
                    {"active_parameters_per_token", active_parameters(model_.config, per)}};
  }
  if (const loading::ModelConfig& c = model_.config; c.is_mla()) {
    const auto [latent, full] = mla_kv_bytes_per_token(c);
    j["kv_cache"] = {{"bytes_per_token", latent}, {"full_kv_bytes_per_token", full}};
  }
  if (!placement_.empty()) j["placement"] = placement_;
  if (recorder_) j["trace_tokens_written"] = recorder_->tokens();
  if (replayer_) j["trace_tokens_replayed"] = replayer_->replayed();
  if (!runner_) return j;
  const offload::OffloadStats s = runner_->stats();
  j["offload"] = {{"setup", summary_},
                  {"expert_uses", s.uses},
                  {"pinned_hits", s.pinned_hits},
                  {"cache_hits", s.cache_hits},
                  {"late_hits", s.late_hits},
                  {"host_hits", s.host_hits},
                  {"nvme_reads", s.nvme_reads},
                  {"cpu_computed", s.cpu_computed},
                  {"low_precision", s.low_precision},
                  {"skipped", s.skipped},
                  {"bypassed", s.bypassed},
                  {"bytes_nvme_to_host", s.bytes_nvme_to_host},
                  {"bytes_host_to_device", s.bytes_host_to_device},
                  {"bytes_between_devices", s.bytes_between_devices},
                  {"stall_seconds", s.stall_seconds},
                  {"prefetches", s.prefetches},
                  {"prefetch_precision", s.precision()},
                  {"prefetch_recall", s.recall()}};
  if (const offload::RankCommunicator* ranks = runner_->ranks())
    j["ranks"] = {{"ranks", ranks->size()}, {"rank", ranks->rank()}, {"first_device", runner_->first_device()},
                  {"exchanges", s.rank_exchanges}, {"bytes_sent", s.bytes_between_ranks},
                  {"exchange_seconds", s.rank_exchange_seconds}, {"collective_seconds", s.rank_collective_seconds}};
  if (const nlohmann::json gpu = gpu_json(); !gpu.empty()) j["gpu"] = gpu;
  return j;
}

std::string Engine::stats_text() const {
  std::string out;
  if (!model_.quantization.empty()) out += model_.quantization.describe() + "\n";
  if (cpu::activations() != cpu::Activations::kExact)
    out += fmt::format("[activations {} (lossy, --activations)]\n", cpu::activations_name(cpu::activations()));
  if (comparison_ && comparison_->result().positions > 0) out += agreement_text(comparison_->result());
  if (routed_ && routed_->first > 0) {
    const double per = double(routed_->second) / double(routed_->first);
    out += fmt::format("[routing {}: {:.2f} of {} experts per token and layer, {:.3g} active parameters per token]\n",
                       model_.transformer->effective_routing_mode().describe(), per, model_.config.num_experts,
                       active_parameters(model_.config, per));
  }
  if (const loading::ModelConfig& c = model_.config; c.is_mla()) {
    const auto [latent, full] = mla_kv_bytes_per_token(c);
    out += fmt::format("[KV cache: {} per token, the latent and rope key of multi-head latent attention; full K/V would take {}]\n",
                       format_bytes(latent), format_bytes(full));
  }
  if (recorder_) out += fmt::format("[trace: {} tokens recorded]\n", recorder_->tokens());
  if (replayer_) out += fmt::format("[trace: routing of {} tokens replayed]\n", replayer_->replayed());
  if (!runner_) return out;
  const offload::OffloadStats s = runner_->stats();
  out += fmt::format("[offload: {}]\n", summary_);
  out += fmt::format(
      "[experts: {} uses = {} pinned + {} cache hits + {} late hits (prefetch still in flight) + {} misses ({} on the CPU, "
      "{} int8, {} skipped, {} streamed past the cache); copies in: {} from host, {} from NVMe (demand and prefetch); stalled {:.3f} s]\n",
      s.uses, s.pinned_hits, s.cache_hits, s.late_hits, s.offloaded_uses - s.cache_hits - s.late_hits, s.cpu_computed, s.low_precision, s.skipped,
      s.bypassed, s.host_hits, s.nvme_reads, s.stall_seconds);
  out += fmt::format("[bytes: NVMe->host {}, host->device {}, between devices {}; prefetch {} copies, precision {:.1f}%, recall {:.1f}%]\n",
                     format_bytes(s.bytes_nvme_to_host), format_bytes(s.bytes_host_to_device),
                     format_bytes(s.bytes_between_devices), s.prefetches, 100 * s.precision(), 100 * s.recall());
  if (const offload::RankCommunicator* ranks = runner_->ranks())
    out += fmt::format("[ranks: {} processes, figures above are rank {}'s (devices {}..{}); {} exchanges of expert results, "
                       "{} sent, {:.3f} s exchanging]\n",
                       ranks->size(), ranks->rank(), runner_->first_device(), runner_->first_device() + local_devices_ - 1,
                       s.rank_exchanges, format_bytes(s.bytes_between_ranks), s.rank_exchange_seconds);
  if (const nlohmann::json g = gpu_json(); !g.empty())
    out += fmt::format(
        "[gpu {}: {}; arena {} of {} used: expert slots {}, resident dense weights {} ({} products left on the CPU), KV cache "
        "{} ({} attention steps on the CPU)]\n",
        g["device"].get<std::string>(), g["memory"].get<std::string>(), format_bytes(g["arena_used_bytes"].get<uint64_t>()),
        format_bytes(g["arena_bytes"].get<uint64_t>()), format_bytes(g["expert_slot_bytes"].get<uint64_t>()),
        format_bytes(g["resident_dense_bytes"].get<uint64_t>()), g["dense_products_on_cpu"].get<int64_t>(),
        format_bytes(g["kv_cache_bytes"].get<uint64_t>()), g["attention_steps_on_cpu"].get<int64_t>());
  return out;
}

}  // namespace moe::engine
