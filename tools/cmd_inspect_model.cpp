// `moe inspect DIR`: the shape of a Hugging Face MoE model folder.
#include <fmt/format.h>

#include "runtime/core/size_parse.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/weights.h"
#include "tools/command.h"

namespace moe::tools {
namespace {

bool is_model_folder(const std::filesystem::path& p) {
  return std::filesystem::is_directory(p) && std::filesystem::exists(p / "config.json");
}

// Whether the folder holds weights (a config alone describes a shape, for planning).
bool has_weights(const std::filesystem::path& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json") return true;
  return false;
}

void inspect_model(const std::filesystem::path& dir, const InspectOptions& options) {
  const loading::ModelConfig c = loading::load_model_config(dir);
  // The weights are loaded as a run loads them (headers, shard index and paths, every tensor's
  // name, dtype and shape against the config), so what is reported is what would run.
  const bool weights = has_weights(dir);
  if (weights) model::load_model(dir);
  const model::WeightBytes bytes = model::weight_bytes(c);
  const int sparse = c.num_sparse_layers();
  if (options.json) {
    print_json({{"kind", "model"},
                {"path", dir.string()},
                {"family", std::string(loading::family_name(c.family))},
                {"model_type", c.model_type},
                {"layers", c.num_layers},
                {"sparse_layers", sparse},
                {"experts_per_layer", c.num_experts},
                {"zero_computation_experts_per_layer", c.router_outputs() - c.num_experts},
                {"experts_per_token", c.num_experts_per_tok},
                {"hidden_size", c.hidden_size},
                {"heads", c.num_heads},
                {"kv_heads", c.num_kv_heads},
                {"head_dim", c.head_dim},
                {"vocab_size", c.vocab_size},
                {"dtype", std::string(dtype_name(c.dtype))},
                {"fp8_block", c.fp8.enabled() ? nlohmann::json{c.fp8.block_rows, c.fp8.block_cols} : nlohmann::json()},
                {"expert_bytes", bytes.per_expert},
                {"all_experts_bytes", bytes.all_experts},
                {"resident_bytes", bytes.resident},
                {"weights", weights ? "checked" : "none (a config alone)"}});
    return;
  }
  fmt::print("model        {} ({}){}\n", dir.string(), c.model_type,
             weights ? ", weights checked against the config" : ", a config alone (no weights)");
  fmt::print("layers       {} ({} with experts)\n", c.num_layers, sparse);
  fmt::print("experts      {} per layer, {} per token, width {}\n", c.num_experts, c.num_experts_per_tok,
             c.moe_intermediate_size);
  if (c.router_outputs() > c.num_experts)
    fmt::print("             + {} zero-computation experts per layer ({} constant, copy, zero)\n",
               c.router_outputs() - c.num_experts, c.moe_plus_plus.constant_experts);
  if (c.family == loading::ModelFamily::kBam)
    fmt::print("             + {} soft-routed attention experts per layer ({})\n", c.bam.attention_experts,
               c.bam.expert_kv ? "Expert-KV" : "Shared-KV");
  if (c.family == loading::ModelFamily::kDsMoe)
    fmt::print("             + {} attention experts per layer (one query head per KV head each); default routing {}\n",
               c.num_experts, c.ds_moe.default_routing);
  if (c.family == loading::ModelFamily::kGptOss) {
    int sliding = 0;
    for (int l = 0; l < c.num_layers; ++l) sliding += c.window_of(l) > 0 ? 1 : 0;
    fmt::print("             biased, clamped SwiGLU (alpha {}, limit {}), stored {}; attention sinks, window {} on {} of {} layers\n",
               c.gpt_oss.swiglu_alpha, c.gpt_oss.swiglu_limit,
               c.gpt_oss.mxfp4_experts ? "mxfp4 (e2m1, an e8m0 scale per 32)" : std::string(dtype_name(c.dtype)), c.sliding_window,
               sliding, c.num_layers);
  }
  if (c.shared_expert_intermediate_size > 0)
    fmt::print("shared       width {}{}\n", c.shared_expert_intermediate_size, c.shared_expert_gated ? ", gated" : "");
  if (c.is_mla()) {  // the cache's row, beside what full K/V of every head would take
    const loading::MlaConfig& m = c.mla;
    const uint64_t latent = 4ull * uint64_t(c.num_layers) * uint64_t(c.head_dim);
    const uint64_t full = 4ull * uint64_t(c.num_layers) * uint64_t(c.num_heads) * uint64_t(m.qk_head_dim() + m.v_head_dim);
    fmt::print("attention    {} heads, multi-head latent: q_lora_rank {}, kv_lora_rank {}, qk dims {} + {} (rope), v dim {}\n",
               c.num_heads, m.q_lora_rank > 0 ? std::to_string(m.q_lora_rank) : "none (q_proj)", m.kv_lora_rank,
               m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim);
    fmt::print("KV cache     {} per token (latent and rope key, f32), full K/V would take {}\n", format_bytes(latent),
               format_bytes(full));
  } else {
    fmt::print("attention    {} heads, {} kv heads, head dim {}\n", c.num_heads, c.num_kv_heads, c.head_dim);
  }
  fmt::print("hidden       {}, vocabulary {}, {}{}\n", c.hidden_size, c.vocab_size, dtype_name(c.dtype),
             c.fp8.enabled() ? fmt::format("; FP8 e4m3 Linears with {} x {} block scales", c.fp8.block_rows, c.fp8.block_cols)
                             : std::string());
  fmt::print("expert bytes {} each, {} in all\n", format_bytes(bytes.per_expert), format_bytes(bytes.all_experts));
  fmt::print("resident     {} (attention, norms, routers, shared experts, embeddings)\n", format_bytes(bytes.resident));
}

const InspectorRegistration kModelInspector("model", is_model_folder, inspect_model);

}  // namespace
}  // namespace moe::tools
