// The model families parsed after the common config.json fields: DeepSeek-V2/V3 (and Kimi-K2),
// GLM-4.5 and gpt-oss, as their transformers configuration classes and modeling code read them;
// the FP8 quantization_config DeepSeek-V3, Kimi-K2, GLM-4.5 and Qwen3's FP8 releases share.
#include <cmath>

#include "runtime/loading/config_fields.h"

namespace moe::loading::detail {
namespace {

// n_group and topk_group of grouped routing (GroupRoutingConfig), checked against the experts:
// the groups split them evenly, a sigmoid router's group holds the two experts it is scored by,
// and the chosen groups hold at least top-k experts.
void parse_groups(const Fields& f, int default_groups, int default_topk, ModelConfig* c) {
  GroupRoutingConfig& g = c->group_routing;
  const int E = c->num_experts;
  const std::string_view src = f.source();
  g.n_group = f.get_int("n_group", default_groups, 1, E);
  g.topk_group = f.get_int("topk_group", default_topk, 1, g.n_group);
  MOE_CHECK(E % g.n_group == 0, ErrorCode::kCorrupt, "{}: n_routed_experts = {} does not split into n_group = {} groups", src, E,
            g.n_group);
  MOE_CHECK(!g.sigmoid || E / g.n_group >= 2, ErrorCode::kUnsupported,
            "{}: n_group = {} leaves fewer than two experts per group (a group scores its best two)", src, g.n_group);
  MOE_CHECK(c->num_experts_per_tok <= g.topk_group * (E / g.n_group), ErrorCode::kCorrupt,
            "{}: num_experts_per_tok = {} exceeds the {} experts of topk_group = {} groups", src, c->num_experts_per_tok,
            g.topk_group * (E / g.n_group), g.topk_group);
}

}  // namespace

// quantization_config of an FP8 checkpoint (Fp8Config); any other method is refused. Fields
// transformers' FineGrainedFP8Config writes that do not change the math here
// (modules_to_not_convert: each tensor's dtype says; dequantize) are accepted, others refused.
void parse_fp8_quantization(const Fields& f, ModelConfig* c) {
  const std::string_view src = f.source();
  const json& q = f.raw("quantization_config");
  const std::string method = q.is_object() && q.contains("quant_method") && q.at("quant_method").is_string()
                                 ? q.at("quant_method").get<std::string>() : q.dump();
  MOE_CHECK(method == "fp8", ErrorCode::kUnsupported,
            "{}: quantization_config (quant_method '{}') is not supported; use fp8 (e4m3 with block scales), bf16 or f32 weights",
            src, method);
  for (const auto& [key, value] : q.items())
    MOE_CHECK(key == "quant_method" || key == "fmt" || key == "activation_scheme" || key == "weight_block_size" ||
                  key == "modules_to_not_convert" || key == "dequantize",
              ErrorCode::kUnsupported, "{}: quantization_config field '{}' is not supported", src, key);
  const auto text = [&](const char* key, const char* fallback) {
    if (!q.contains(key) || q.at(key).is_null()) return std::string(fallback);
    return q.at(key).is_string() ? q.at(key).get<std::string>() : q.at(key).dump();
  };
  const std::string fmt = text("fmt", "e4m3"), scheme = text("activation_scheme", "dynamic");
  MOE_CHECK(fmt == "e4m3", ErrorCode::kUnsupported, "{}: quantization_config fmt '{}' is not supported (e4m3 only)", src, fmt);
  MOE_CHECK(scheme == "dynamic", ErrorCode::kUnsupported,
            "{}: quantization_config activation_scheme '{}' is not supported (dynamic only)", src, scheme);
  int block[2] = {128, 128};  // FineGrainedFP8Config's default
  if (q.contains("weight_block_size")) {
    const json& b = q.at("weight_block_size");
    const bool ok = b.is_array() && b.size() == 2 && b[0].is_number_integer() && b[1].is_number_integer() &&
                    b[0].get<int64_t>() >= 1 && b[1].get<int64_t>() >= 1 && b[0].get<int64_t>() <= (1 << 20) &&
                    b[1].get<int64_t>() <= (1 << 20);
    MOE_CHECK(ok, ErrorCode::kUnsupported,
              "{}: quantization_config weight_block_size {} is not supported (two positive integers: rows, columns)", src, b.dump());
    block[0] = int(b[0].get<int64_t>());
    block[1] = int(b[1].get<int64_t>());
  }
  c->fp8.block_rows = block[0];
  c->fp8.block_cols = block[1];
}

// DeepSeek-V2 and V3 as transformers' DeepseekV2Config / DeepseekV3Config (and their modeling
// code) read them: multi-head latent attention, grouped routing, shared experts, dense first
// layers. Fields that transformers ignores but DeepSeek's released code honours (norm_topk_prob
// on V2, moe_layer_freq, topk_method on V3) are refused unless they leave the math unchanged.
void parse_deepseek_v2(const Fields& f, ModelConfig* c) {
  constexpr int kMaxDim = 1 << 20;
  const bool v3 = c->family == ModelFamily::kDeepseekV3;
  const std::string_view src = f.source();
  if (f.has("quantization_config")) parse_fp8_quantization(f, c);
  MlaConfig& m = c->mla;
  m.q_lora_rank = f.is_null("q_lora_rank") ? 0 : f.get_int("q_lora_rank", 1536, 1, kMaxDim);
  m.kv_lora_rank = f.get_int("kv_lora_rank", 512, 1, kMaxDim);
  m.qk_nope_head_dim = f.get_int("qk_nope_head_dim", 128, 0, kMaxDim);
  m.qk_rope_head_dim = f.get_int("qk_rope_head_dim", 64, 2, kMaxDim);
  m.v_head_dim = f.get_int("v_head_dim", 128, 1, kMaxDim);
  // transformers writes the derived query/key head width too: it must agree.
  MOE_CHECK(!f.has("qk_head_dim") || f.get_int("qk_head_dim", 0, 0, kMaxDim) == m.qk_nope_head_dim + m.qk_rope_head_dim,
            ErrorCode::kCorrupt, "{}: qk_head_dim = {} is not qk_nope_head_dim + qk_rope_head_dim = {}", src,
            f.get_int("qk_head_dim", 0, 0, kMaxDim), m.qk_nope_head_dim + m.qk_rope_head_dim);
  MOE_CHECK(m.qk_rope_head_dim % 2 == 0, ErrorCode::kCorrupt, "{}: qk_rope_head_dim = {} must be even", src,
            m.qk_rope_head_dim);
  m.rope_interleave = v3 ? f.get_bool("rope_interleave", true) : true;  // V2's complex product pairs (2i, 2i+1)
  // transformers builds every head's k and v from kv_b_proj: its repeat_kv needs as many KV heads as heads.
  MOE_CHECK(c->num_kv_heads == c->num_heads, ErrorCode::kUnsupported,
            "{}: num_key_value_heads = {} is not supported with multi-head latent attention (it must equal num_attention_heads, {})",
            src, c->num_kv_heads, c->num_heads);
  MOE_CHECK(c->rope.partial_rotary_factor == 1.0, ErrorCode::kUnsupported,
            "{}: partial_rotary_factor = {} is not supported with multi-head latent attention (qk_rope_head_dim is the rotary part)",
            src, c->rope.partial_rotary_factor);
  // transformers' yarn_apply_mscale: any non-default rope type with mscale_all_dim scales the softmax.
  m.softmax_scale = 1.0 / std::sqrt(double(m.qk_head_dim()));
  if (c->rope.type != "default" && c->rope.mscale_all_dim != 0) {
    const double factor = c->rope.factor;
    const double mscale = factor <= 1 ? 1.0 : 0.1 * c->rope.mscale_all_dim * std::log(factor) + 1.0;
    m.softmax_scale *= mscale * mscale;
  }
  c->num_kv_heads = 1;  // the cache's latent row (model_config.h)
  c->head_dim = m.kv_lora_rank + m.qk_rope_head_dim;
  c->attention_bias = c->output_bias = f.get_bool("attention_bias", false);  // q_a, kv_a and o_proj
  if (!v3)
    MOE_CHECK(!f.get_bool("mlp_bias", false), ErrorCode::kUnsupported, "{}: mlp_bias = true is not supported", src);

  c->moe_intermediate_size = f.get_int("moe_intermediate_size", v3 ? 2048 : 1407, 1, kMaxDim);
  c->num_experts = f.get_int("n_routed_experts", f.get_int("num_local_experts", v3 ? 256 : 64, 1, 1 << 16), 1, 1 << 16);
  if (v3 && !f.has("num_experts_per_tok")) c->num_experts_per_tok = 8;
  MOE_CHECK(v3 || f.has("num_experts_per_tok"), ErrorCode::kCorrupt, "{} has no 'num_experts_per_tok'", src);
  const int shared = f.get_int("n_shared_experts", v3 ? 1 : 2, 0, 1024);
  c->shared_expert_intermediate_size = shared * c->moe_intermediate_size;
  const int freq = f.get_int("moe_layer_freq", 1, 1);
  MOE_CHECK(freq == 1, ErrorCode::kUnsupported,
            "{}: moe_layer_freq = {} is not supported (transformers makes every layer from first_k_dense_replace on sparse)",
            src, freq);

  GroupRoutingConfig& g = c->group_routing;
  g.sigmoid = v3;
  g.routed_scaling_factor = f.get_double("routed_scaling_factor", v3 ? 2.5 : 1.0);
  const std::string scoring = f.get_string("scoring_func", v3 ? "sigmoid" : "softmax");
  MOE_CHECK(scoring == (v3 ? "sigmoid" : "softmax"), ErrorCode::kUnsupported, "{}: scoring_func '{}' is not supported ({} only)",
            src, scoring, v3 ? "sigmoid" : "softmax");
  bool grouped = true;
  if (v3) {
    const std::string method = f.get_string("topk_method", "noaux_tc");
    MOE_CHECK(method == "noaux_tc", ErrorCode::kUnsupported, "{}: topk_method '{}' is not supported (noaux_tc only)", src, method);
    c->norm_topk_prob = f.get_bool("norm_topk_prob", true);
    MOE_CHECK(!f.is_null("n_group") && !f.is_null("topk_group"), ErrorCode::kCorrupt,
              "{}: n_group and topk_group must be numbers", src);
  } else {
    const std::string method = f.get_string("topk_method", "greedy");
    MOE_CHECK(method == "greedy" || method == "group_limited_greedy", ErrorCode::kUnsupported,
              "{}: topk_method '{}' is not supported (greedy, group_limited_greedy)", src, method);
    grouped = method == "group_limited_greedy";
    // transformers' V2 router never renormalises; DeepSeek's released code does: refused as ambiguous.
    MOE_CHECK(!f.get_bool("norm_topk_prob", false), ErrorCode::kUnsupported,
              "{}: norm_topk_prob = true is not supported for deepseek_v2 (transformers ignores it)", src);
    c->norm_topk_prob = false;
  }
  if (grouped) {
    parse_groups(f, v3 ? 8 : 1, v3 ? 4 : 1, c);
  } else {  // greedy ignores the groups: read for their types only
    f.get_int("n_group", 1, 1, c->num_experts);
    f.get_int("topk_group", 1, 1, c->num_experts);
  }
}

// GLM-4.5 / 4.5-Air as transformers' Glm4MoeConfig and modeling code read them: grouped sigmoid
// routing with a correction bias (DeepSeek-V3's router), shared experts, dense first layers;
// grouped-query attention with q/k/v biases (o_proj never has one), per-head QK norm when
// use_qk_norm, and partial RoPE (half the head by default) rotating the first dims by halves.
void parse_glm4_moe(const Fields& f, const json& doc, ModelConfig* c) {
  constexpr int kMaxDim = 1 << 20;
  const std::string_view src = f.source();
  if (f.has("quantization_config")) parse_fp8_quantization(f, c);  // GLM-4.5(-Air)-FP8: DeepSeek-V3's blocks
  // Glm4MoeConfig's default partial_rotary_factor is 0.5 (in rope_parameters), not 1.
  bool partial_given = f.has("partial_rotary_factor");
  for (const char* key : {"rope_parameters", "rope_scaling"})
    if (doc.contains(key) && doc.at(key).is_object() && doc.at(key).contains("partial_rotary_factor")) partial_given = true;
  if (!partial_given) c->rope.partial_rotary_factor = 0.5;
  const double rotary = c->head_dim * c->rope.partial_rotary_factor;
  MOE_CHECK(c->rope.partial_rotary_factor > 0 && c->rope.partial_rotary_factor <= 1 && std::lround(rotary) % 2 == 0,
            ErrorCode::kUnsupported, "{}: partial_rotary_factor = {} must rotate an even number of the {} head dims", src,
            c->rope.partial_rotary_factor, c->head_dim);
  c->attention_bias = f.get_bool("attention_bias", false);
  c->output_bias = false;
  c->qk_norm = f.get_bool("use_qk_norm", false) ? QkNorm::kPerHead : QkNorm::kNone;
  c->moe_intermediate_size = f.get_int("moe_intermediate_size", 1408, 1, kMaxDim);
  c->num_experts = f.get_int("n_routed_experts", f.get_int("num_local_experts", 128, 1, 1 << 16), 1, 1 << 16);
  if (!f.has("num_experts_per_tok")) c->num_experts_per_tok = 8;
  c->shared_expert_intermediate_size = f.get_int("n_shared_experts", 1, 0, 1024) * c->moe_intermediate_size;
  c->norm_topk_prob = f.get_bool("norm_topk_prob", true);
  MOE_CHECK(!f.get_bool("mlp_bias", false), ErrorCode::kUnsupported, "{}: mlp_bias = true is not supported", src);
  const int freq = f.get_int("moe_layer_freq", 1, 1);
  MOE_CHECK(freq == 1, ErrorCode::kUnsupported, "{}: moe_layer_freq = {} is not supported", src, freq);
  GroupRoutingConfig& g = c->group_routing;
  g.sigmoid = true;
  g.routed_scaling_factor = f.get_double("routed_scaling_factor", 1.0);
  parse_groups(f, 1, 1, c);
}

// gpt-oss as transformers' GptOssConfig and modeling code read it. Its defaults are the class's
// (the 20b/120b shapes), not the common ones: head_dim 64, 4 experts a token, eps 1e-5, the
// release's YaRN (factor 32 over 4096 positions, truncate false), sliding windows of 128 on the
// even layers.
void parse_gpt_oss(const Fields& f, ModelConfig* c) {
  constexpr int kMaxDim = 1 << 20;
  const std::string_view src = f.source();
  if (!f.has("head_dim") && !f.is_null("head_dim")) c->head_dim = 64;
  c->num_experts_per_tok = f.get_int("num_experts_per_tok", 4, 1, 4096);
  c->rms_norm_eps = f.get_positive("rms_norm_eps", 1e-5);
  c->max_position_embeddings = f.get_int("max_position_embeddings", 131072, 1, 1 << 24);
  c->num_experts = f.get_int("num_local_experts", f.get_int("num_experts", 128, 1, 1 << 16), 1, 1 << 16);
  c->intermediate_size = f.get_int("intermediate_size", 2880, 1, kMaxDim);
  c->moe_intermediate_size = c->intermediate_size;  // the experts' width; every layer is sparse
  c->attention_bias = c->output_bias = f.get_bool("attention_bias", true);
  if (!f.has("rope_parameters") && !f.has("rope_scaling")) {  // GptOssConfig.__post_init__'s rope
    c->rope.type = "yarn";
    c->rope.factor = 32.0;
    c->rope.beta_fast = 32.0;
    c->rope.beta_slow = 1.0;
    c->rope.truncate = false;
    c->rope.original_max_position_embeddings = 4096;
  }
  MOE_CHECK(c->rope.partial_rotary_factor == 1.0, ErrorCode::kUnsupported,
            "{}: partial_rotary_factor = {} is not supported for gpt_oss", src, c->rope.partial_rotary_factor);
  GptOssConfig& g = c->gpt_oss;
  g.swiglu_alpha = f.get_double("swiglu_alpha", 1.702);
  g.swiglu_limit = f.get_double("swiglu_limit", 7.0);
  MOE_CHECK(g.swiglu_limit > 0, ErrorCode::kUnsupported, "{}: swiglu_limit = {} is not supported (it must be positive)", src,
            g.swiglu_limit);
  if (f.has("quantization_config")) {
    const json& q = f.raw("quantization_config");
    const std::string method = q.is_object() && q.contains("quant_method") && q.at("quant_method").is_string()
                                   ? q.at("quant_method").get<std::string>() : q.dump();
    MOE_CHECK(method == "mxfp4", ErrorCode::kUnsupported,
              "{}: quantization_config quant_method '{}' is not supported for gpt_oss (mxfp4 experts, or bf16/f32)", src, method);
    g.mxfp4_experts = true;
  }
  // layer_types (absent: GptOssConfig's alternation, sliding on the even layers) and the window.
  std::vector<bool> sliding(static_cast<size_t>(c->num_layers), false);
  if (f.has("layer_types")) {
    const json& types = f.raw("layer_types");
    MOE_CHECK(types.is_array() && types.size() == sliding.size(), ErrorCode::kCorrupt,
              "{}: layer_types must list one type for each of the {} layers", src, c->num_layers);
    for (size_t l = 0; l < sliding.size(); ++l) {
      const std::string t = types[l].is_string() ? types[l].get<std::string>() : types[l].dump();
      MOE_CHECK(t == "full_attention" || t == "sliding_attention", ErrorCode::kUnsupported,
                "{}: layer_types[{}] = '{}' is not supported (full_attention, sliding_attention)", src, l, t);
      sliding[l] = t == "sliding_attention";
    }
  } else {
    for (size_t l = 0; l < sliding.size(); ++l) sliding[l] = l % 2 == 0;
  }
  bool any = false;
  for (bool s : sliding) any = any || s;
  MOE_CHECK(!any || !f.is_null("sliding_window"), ErrorCode::kUnsupported,
            "{}: sliding_window = null is not supported with sliding_attention layers", src);
  c->sliding_window = any ? f.get_int("sliding_window", 128, 1) : 0;
  if (any) c->sliding_layers = std::move(sliding);
}


}  // namespace moe::loading::detail
