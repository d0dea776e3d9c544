#include "runtime/loading/model_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/core/error.h"
#include "runtime/core/read_file.h"
#include "runtime/loading/config_fields.h"

namespace moe::loading {
namespace {

using detail::Fields;
using nlohmann::json;

bool parse_family(std::string_view model_type, ModelFamily* family) {
  struct Entry {
    std::string_view name;
    ModelFamily family;
  };
  static constexpr Entry kFamilies[] = {
      {"mixtral", ModelFamily::kMixtral},     {"qwen2_moe", ModelFamily::kQwen2Moe},
      {"qwen3_moe", ModelFamily::kQwen3Moe},  {"olmoe", ModelFamily::kOlmoe},
      {"deepseek", ModelFamily::kDeepseekMoe},  {"moe_plus_plus", ModelFamily::kMoePlusPlus},
      {"MoE++", ModelFamily::kMoePlusPlus},     {"ds_moe", ModelFamily::kDsMoe},
      {"bam", ModelFamily::kBam},
      {"deepseek_v2", ModelFamily::kDeepseekV2}, {"deepseek_v3", ModelFamily::kDeepseekV3},
      {"kimi_k2", ModelFamily::kDeepseekV3},  // Kimi-K2 is DeepseekV3ForCausalLM
      {"gpt_oss", ModelFamily::kGptOss},       {"glm4_moe", ModelFamily::kGlm4Moe},
  };
  for (const Entry& e : kFamilies) {
    if (e.name == model_type) {
      *family = e.family;
      return true;
    }
  }
  return false;
}

// rope_theta + rope_scaling (transformers 4.x) or rope_parameters (5.x).
RopeConfig parse_rope(const Fields& top, const json& doc, double default_theta) {
  RopeConfig rope;
  rope.theta = top.get_positive("rope_theta", default_theta);
  rope.partial_rotary_factor = top.get_double("partial_rotary_factor", 1.0);
  const json* params = nullptr;
  if (top.has("rope_parameters")) params = &top.object("rope_parameters");
  else if (top.has("rope_scaling")) params = &top.object("rope_scaling");
  if (params == nullptr) return rope;
  const Fields p(*params, top.source());
  rope.theta = p.get_positive("rope_theta", rope.theta);
  rope.type = p.get_string("rope_type", p.get_string("type", "default"));
  rope.factor = p.get_double("factor", 1.0);
  rope.partial_rotary_factor = p.get_double("partial_rotary_factor", rope.partial_rotary_factor);
  rope.original_max_position_embeddings = p.get_int("original_max_position_embeddings", 0);
  rope.low_freq_factor = p.get_double("low_freq_factor", rope.low_freq_factor);
  rope.high_freq_factor = p.get_double("high_freq_factor", rope.high_freq_factor);
  rope.beta_fast = p.get_double("beta_fast", rope.beta_fast);
  rope.beta_slow = p.get_double("beta_slow", rope.beta_slow);
  rope.attention_factor = p.get_double("attention_factor", 0.0);
  rope.mscale = p.get_double("mscale", 0.0);
  rope.mscale_all_dim = p.get_double("mscale_all_dim", 0.0);
  // YaRN's correction range is floored and ceiled unless truncate is false (gpt-oss).
  rope.truncate = p.get_bool("truncate", true);
  static constexpr std::string_view kKnown[] = {"default", "linear", "dynamic", "yarn", "llama3"};
  bool known = false;
  for (std::string_view k : kKnown) known = known || rope.type == k;
  MOE_CHECK(known, ErrorCode::kUnsupported, "{}: rope type '{}' is not supported (supported: default, linear, dynamic, yarn, llama3)",
            top.source(), rope.type);
  MOE_CHECK(rope.factor > 0, ErrorCode::kCorrupt, "{}: rope factor must be positive", top.source());
  (void)doc;
  return rope;
}

// transformers' Qwen2MoeConfig: with use_sliding_window, the layers layer_types marks
// "sliding_attention" slide; absent, the even layers below max_window_layers do.
void parse_qwen2_sliding(const Fields& f, ModelConfig* c) {
  const bool use = f.get_bool("use_sliding_window", false);
  // Read (and type-checked) either way; without use_sliding_window they change nothing.
  const int window_field = f.get_int("sliding_window", 4096, 0);
  const int below = f.get_int("max_window_layers", 28);
  MOE_CHECK(!use || window_field >= 1, ErrorCode::kCorrupt, "{}: use_sliding_window needs a sliding_window of at least 1",
            f.source());
  const int window = use ? window_field : 0;
  std::vector<bool> sliding(static_cast<size_t>(c->num_layers), false);
  if (f.has("layer_types")) {
    const json& types = f.raw("layer_types");
    MOE_CHECK(types.is_array() && types.size() == sliding.size(), ErrorCode::kCorrupt,
              "{}: layer_types must list one type for each of the {} layers", f.source(), c->num_layers);
    for (size_t l = 0; l < sliding.size(); ++l) {
      const std::string t = types[l].is_string() ? types[l].get<std::string>() : "";
      MOE_CHECK(t == "full_attention" || t == "sliding_attention", ErrorCode::kUnsupported,
                "{}: layer_types[{}] = '{}' is not supported (full_attention, sliding_attention)", f.source(), l, t);
      sliding[l] = t == "sliding_attention";
    }
  } else {
    for (int l = 0; l < c->num_layers; ++l) sliding[static_cast<size_t>(l)] = use && (l + 1) % 2 == 1 && l < below;
  }
  bool any = false;
  for (bool s : sliding) any = any || s;
  // transformers' window is 0 without use_sliding_window: a sliding layer would see no key.
  MOE_CHECK(!any || use, ErrorCode::kUnsupported,
            "{}: layer_types marks sliding layers but use_sliding_window is false", f.source());
  c->sliding_window = any ? window : 0;
  if (any) c->sliding_layers = std::move(sliding);
}

void fill_sparse_layers(const Fields& f, ModelConfig* c) {
  c->sparse_layers.assign(static_cast<size_t>(c->num_layers), false);
  switch (c->family) {
    case ModelFamily::kMixtral:
    case ModelFamily::kOlmoe:
    case ModelFamily::kMoePlusPlus:
    case ModelFamily::kDsMoe:
    case ModelFamily::kBam:
    case ModelFamily::kGptOss:
      c->sparse_layers.assign(static_cast<size_t>(c->num_layers), true);
      break;
    case ModelFamily::kQwen2Moe:
    case ModelFamily::kQwen3Moe: {
      // transformers: sparse when not in mlp_only_layers and (layer + 1) % decoder_sparse_step == 0.
      const int step = f.get_int("decoder_sparse_step", 1, 1);
      const std::vector<int32_t> dense_only = f.get_int_list("mlp_only_layers");
      for (int l = 0; l < c->num_layers; ++l) {
        bool dense = false;
        for (int32_t d : dense_only) dense = dense || d == l;
        c->sparse_layers[static_cast<size_t>(l)] = !dense && c->num_experts > 0 && (l + 1) % step == 0;
      }
      break;
    }
    case ModelFamily::kDeepseekV2:
    case ModelFamily::kDeepseekV3:
    case ModelFamily::kGlm4Moe: {
      // transformers: sparse from first_k_dense_replace on (moe_layer_freq other than 1 is refused).
      const int first_dense = f.get_int("first_k_dense_replace", c->family == ModelFamily::kDeepseekV3 ? 3
                                                                 : c->family == ModelFamily::kGlm4Moe  ? 1
                                                                                                        : 0);
      for (int l = 0; l < c->num_layers; ++l) c->sparse_layers[static_cast<size_t>(l)] = l >= first_dense;
      break;
    }
    case ModelFamily::kDeepseekMoe: {
      // DeepSeek's remote code: sparse when layer >= first_k_dense_replace and layer % freq == 0.
      const int first_dense = f.get_int("first_k_dense_replace", 0);
      const int freq = f.get_int("moe_layer_freq", 1, 1);
      for (int l = 0; l < c->num_layers; ++l)
        c->sparse_layers[static_cast<size_t>(l)] = c->num_experts > 0 && l >= first_dense && l % freq == 0;
      break;
    }
  }
}

}  // namespace

std::string_view family_name(ModelFamily family) {
  switch (family) {
    case ModelFamily::kMixtral: return "mixtral";
    case ModelFamily::kQwen2Moe: return "qwen2_moe";
    case ModelFamily::kQwen3Moe: return "qwen3_moe";
    case ModelFamily::kOlmoe: return "olmoe";
    case ModelFamily::kDeepseekMoe: return "deepseek";
    case ModelFamily::kMoePlusPlus: return "moe_plus_plus";
    case ModelFamily::kDsMoe: return "ds_moe";
    case ModelFamily::kBam: return "bam";
    case ModelFamily::kDeepseekV2: return "deepseek_v2";
    case ModelFamily::kDeepseekV3: return "deepseek_v3";
    case ModelFamily::kGlm4Moe: return "glm4_moe";
    case ModelFamily::kGptOss: return "gpt_oss";
  }
  return "?";
}

std::vector<int> ModelConfig::moe_layers() const {
  std::vector<int> out;
  for (int l = 0; l < int(sparse_layers.size()); ++l)
    if (sparse_layers[size_t(l)]) out.push_back(l);
  return out;
}

int ModelConfig::moe_layer_index(int layer) const {
  if (!is_sparse(layer)) return -1;
  int index = 0;
  for (int l = 0; l < layer; ++l) index += sparse_layers[size_t(l)] ? 1 : 0;
  return index;
}

int ModelConfig::num_sparse_layers() const {
  int n = 0;
  for (bool s : sparse_layers) n += s ? 1 : 0;
  return n;
}

ModelConfig parse_model_config(std::string_view json_text, std::string_view source_name, std::set<std::string>* fields_read) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  MOE_CHECK(!doc.is_discarded(), ErrorCode::kCorrupt, "{} is not valid JSON", source_name);
  MOE_CHECK(doc.is_object(), ErrorCode::kCorrupt, "{} must hold a JSON object", source_name);
  const Fields f(doc, source_name, fields_read);
  MOE_CHECK(f.has("model_type"), ErrorCode::kCorrupt, "{} has no 'model_type'", source_name);

  ModelConfig c;
  c.model_type = f.get_string("model_type", "");
  MOE_CHECK(parse_family(c.model_type, &c.family), ErrorCode::kUnsupported,
            "{}: model_type '{}' is not supported (supported: mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek, deepseek_v2, deepseek_v3, kimi_k2, glm4_moe, gpt_oss, moe_plus_plus, ds_moe, bam)",
            source_name, c.model_type);

  constexpr int kMaxDim = 1 << 20;
  c.vocab_size = f.get_int("vocab_size", 0, 1, 1 << 24);
  c.hidden_size = f.get_int("hidden_size", 0, 1, kMaxDim);
  c.num_layers = f.get_int("num_hidden_layers", 0, 1, 4096);
  c.num_heads = f.get_int("num_attention_heads", 0, 1, 4096);
  c.num_kv_heads = f.get_int("num_key_value_heads", c.num_heads, 1, 4096);
  c.head_dim = f.get_int("head_dim", c.num_heads ? c.hidden_size / c.num_heads : 0, 1, 4096);
  c.max_position_embeddings = f.get_int("max_position_embeddings", 4096, 1, 1 << 24);
  c.rms_norm_eps = f.get_positive("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = f.get_bool("tie_word_embeddings", false);
  c.intermediate_size = f.get_int("intermediate_size", 0, 0, kMaxDim);
  c.num_experts_per_tok = f.get_int("num_experts_per_tok", 2, 1, 4096);
  c.bos_token_id = f.get_int("bos_token_id", -1, -1, 1 << 24);
  c.eos_token_ids = f.get_int_list("eos_token_id");
  std::string dtype_text = f.get_string("torch_dtype", f.get_string("dtype", "bfloat16"));
  if (!parse_dtype(dtype_text, &c.dtype)) c.dtype = DType::kBF16;

  if (c.family == ModelFamily::kDsMoe) {  // dense_moe's GPT-2 style names, or the HF ones
    c.hidden_size = f.get_int("n_embd", c.hidden_size, 1, kMaxDim);
    c.num_layers = f.get_int("n_layer", c.num_layers, 1, 4096);
    c.num_heads = f.get_int("n_head", c.num_heads, 1, 4096);
    c.num_kv_heads = c.num_heads;  // for now; the attention experts fix it below
    c.max_position_embeddings = f.get_int("n_positions", c.max_position_embeddings, 1, 1 << 24);
    c.intermediate_size = f.get_int("n_inner", c.intermediate_size, 0, kMaxDim);
    c.rms_norm_eps = f.get_positive("layer_norm_epsilon", 1e-5);
    c.tie_word_embeddings = f.get_bool("tie_word_embeddings", true);
    for (const auto& [hf, gpt] : {std::pair{"hidden_size", "n_embd"}, {"num_hidden_layers", "n_layer"}, {"num_attention_heads", "n_head"}})
      MOE_CHECK(f.has(hf) || f.has(gpt), ErrorCode::kCorrupt, "{} has neither '{}' nor '{}'", source_name, hf, gpt);
  } else
  for (const char* required : {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"})
    MOE_CHECK(f.has(required), ErrorCode::kCorrupt, "{} has no '{}'", source_name, required);
  // DS-MoE names its activation below; gpt-oss's experts apply their clamped SwiGLU whatever
  // hidden_act says (transformers' GptOssExperts never reads it).
  if (c.family != ModelFamily::kDsMoe && c.family != ModelFamily::kGptOss) {
    // Every other family's MLPs and experts are act(gate(x)) * up(x), act by its ACT2FN name.
    const std::string act = f.get_string("hidden_act", "silu");
    if (act == "silu" || act == "swish") c.activation = cpu::Activation::kSilu;
    else if (act == "gelu") c.activation = cpu::Activation::kGelu;
    else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.activation = cpu::Activation::kGeluTanh;
    else if (act == "relu") c.activation = cpu::Activation::kRelu;
    else if (act == "quick_gelu") c.activation = cpu::Activation::kQuickGelu;
    else
      fail(ErrorCode::kUnsupported, "{}: hidden_act '{}' is not supported (silu, swish, gelu, gelu_new, gelu_pytorch_tanh, relu, quick_gelu)",
           source_name, act);
  }
  MOE_CHECK(c.num_heads % c.num_kv_heads == 0, ErrorCode::kCorrupt,
            "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", source_name,
            c.num_heads, c.num_kv_heads);

  double default_theta = 10000.0;
  // transformers 5 writes the expert count under its attribute_map name (num_local_experts)
  // for every family; released checkpoints use each family's own name.
  switch (c.family) {
    case ModelFamily::kMixtral:
      default_theta = 1e6;
      c.moe_intermediate_size = c.intermediate_size;  // Mixtral's intermediate_size is the expert width
      c.num_experts = f.get_int("num_local_experts", 8, 1, 1 << 16);
      c.norm_topk_prob = true;                        // Mixtral always renormalises the top-k
      c.sliding_window = f.get_int("sliding_window", 0);
      break;
    case ModelFamily::kQwen2Moe:
      c.moe_intermediate_size = f.get_int("moe_intermediate_size", 0, 1, kMaxDim);
      c.num_experts = f.get_int("num_experts", f.get_int("num_local_experts", 0, 0, 1 << 16), 0, 1 << 16);
      c.norm_topk_prob = f.get_bool("norm_topk_prob", false);
      c.shared_expert_intermediate_size = f.get_int("shared_expert_intermediate_size", 0, 0, kMaxDim);
      c.shared_expert_gated = true;
      c.attention_bias = f.get_bool("qkv_bias", true);  // q, k and v only: o_proj never has one
      parse_qwen2_sliding(f, &c);
      break;
    case ModelFamily::kQwen3Moe:
      c.moe_intermediate_size = f.get_int("moe_intermediate_size", 0, 1, kMaxDim);
      c.num_experts = f.get_int("num_experts", f.get_int("num_local_experts", 0, 0, 1 << 16), 0, 1 << 16);
      c.norm_topk_prob = f.get_bool("norm_topk_prob", false);
      c.attention_bias = c.output_bias = f.get_bool("attention_bias", false);
      c.qk_norm = QkNorm::kPerHead;
      if (const int window = f.get_int("sliding_window", 0); f.get_bool("use_sliding_window", false)) c.sliding_window = window;
      break;
    case ModelFamily::kOlmoe:
      c.moe_intermediate_size = c.intermediate_size;
      c.num_experts = f.get_int("num_experts", f.get_int("num_local_experts", 64, 1, 1 << 16), 1, 1 << 16);
      c.norm_topk_prob = f.get_bool("norm_topk_prob", false);
      c.attention_bias = c.output_bias = f.get_bool("attention_bias", false);
      c.qk_norm = QkNorm::kFull;
      c.clip_qkv = f.get_double("clip_qkv", 0.0);
      c.rms_norm_eps = f.get_positive("rms_norm_eps", 1e-5);
      break;
    case ModelFamily::kDeepseekMoe: {
      c.moe_intermediate_size = f.get_int("moe_intermediate_size", 0, 1, kMaxDim);
      c.num_experts = f.get_int("n_routed_experts", 0, 0, 1 << 16);
      c.norm_topk_prob = f.get_bool("norm_topk_prob", false);
      const int shared = f.get_int("n_shared_experts", 0, 0, 1024);
      c.shared_expert_intermediate_size = shared * c.moe_intermediate_size;
      c.attention_bias = c.output_bias = f.get_bool("attention_bias", false);
      const std::string scoring = f.get_string("scoring_func", "softmax");
      MOE_CHECK(scoring == "softmax", ErrorCode::kUnsupported, "{}: scoring_func '{}' is not supported (softmax only)",
                source_name, scoring);
      MOE_CHECK(!f.has("kv_lora_rank"), ErrorCode::kUnsupported,
                "{}: multi-head latent attention (kv_lora_rank) is not supported yet", source_name);
      break;
    }
    case ModelFamily::kGlm4Moe:
      c.rms_norm_eps = f.get_positive("rms_norm_eps", 1e-5);
      c.max_position_embeddings = f.get_int("max_position_embeddings", 131072, 1, 1 << 24);
      break;  // below, once the common fields are known
    case ModelFamily::kMoePlusPlus:
    case ModelFamily::kDsMoe:
    case ModelFamily::kDeepseekV2:
    case ModelFamily::kDeepseekV3:
      break;  // below, once the common fields are known
    case ModelFamily::kGptOss:
      default_theta = 150000.0;
      break;  // below
    case ModelFamily::kBam: {
      c.moe_intermediate_size = c.intermediate_size;
      c.num_experts = f.get_int("num_experts", 0, 1, 1 << 16);
      c.num_experts_per_tok = f.get_int("num_experts_per_tok", 1, 1, 1 << 16);
      c.norm_topk_prob = false;  // FFN experts are weighted by their probability
      c.bam.attention_experts = f.get_int("num_attention_experts", 0, 1, 256);
      const std::string kv = f.get_string("attention_kv", "expert");
      MOE_CHECK(kv == "expert" || kv == "shared", ErrorCode::kCorrupt, "{}: attention_kv must be expert or shared, not '{}'",
                source_name, kv);
      c.bam.expert_kv = kv == "expert";
      break;
    }
  }
  if (c.family == ModelFamily::kMoePlusPlus) {
    MoePlusPlusConfig& m = c.moe_plus_plus;
    const std::vector<int32_t> experts = f.get_int_list("num_experts");
    MOE_CHECK(experts.size() == 1, ErrorCode::kCorrupt, "{}: MoE++ needs num_experts as one number (or a list of one)",
              source_name);
    m.constant_experts = f.get_int("num_constant_experts", 2, 0, 64);
    c.num_experts = experts[0] - m.zero_computation_experts();
    MOE_CHECK(c.num_experts >= 1, ErrorCode::kCorrupt, "{}: {} experts leave no FFN expert beside {} zero-computation ones",
              source_name, experts[0], m.zero_computation_experts());
    MOE_CHECK(f.get_int("moe_expert_interval", 1, 1) == 1, ErrorCode::kUnsupported,
              "{}: MoE++ with dense layers between MoE layers (moe_expert_interval > 1) is not supported", source_name);
    c.moe_intermediate_size = c.intermediate_size;
    c.num_experts_per_tok = f.get_int("num_experts_per_tok", 2, 1, 2);  // the release fixes top-2
    m.two_layer_gate = f.get_bool("moe_2layer_gate", true);
    m.logits_norm = f.get_bool("moe_use_logits_norm", false);
    m.gate_norm_std = f.get_double("moe_gate_norm_std", 1.0);
    m.mixtral_gating = f.get_bool("moe_use_mixtral_gating", false);
    m.no_input_scaling = f.get_bool("moe_feature_no_mul_topk", false);
    MOE_CHECK(m.gate_norm_std > 0, ErrorCode::kCorrupt, "{}: moe_gate_norm_std must be positive", source_name);
  }
  if (c.family == ModelFamily::kDsMoe) {
    DsMoeConfig& d = c.ds_moe;
    MOE_CHECK(f.has("vocab_size"), ErrorCode::kCorrupt, "{} has no 'vocab_size'", source_name);
    c.num_experts = f.get_int("num_experts", 8, 1, 4096);
    d.attention_experts = f.get_int("num_attention_experts", c.num_experts, 1, 4096);
    MOE_CHECK(c.num_heads % d.attention_experts == 0, ErrorCode::kCorrupt,
              "{}: {} attention heads do not split into {} attention experts", source_name, c.num_heads,
              d.attention_experts);
    c.num_kv_heads = c.num_heads / d.attention_experts;  // each attention expert owns one query head per KV head
    c.head_dim = c.hidden_size / c.num_heads;
    MOE_CHECK(c.head_dim * c.num_heads == c.hidden_size, ErrorCode::kCorrupt, "{}: n_embd {} does not split into {} heads",
              source_name, c.hidden_size, c.num_heads);
    c.moe_intermediate_size = c.intermediate_size > 0 ? c.intermediate_size : 4 * c.hidden_size;
    c.intermediate_size = c.moe_intermediate_size;
    c.num_experts_per_tok = c.num_experts;
    MOE_CHECK(f.get_bool("add_bias", true), ErrorCode::kUnsupported, "{}: DS-MoE without biases is not supported", source_name);
    const std::string act = f.get_string("activation_function", "gelu_pytorch_tanh");
    MOE_CHECK(act == "gelu_pytorch_tanh" || act == "gelu_new", ErrorCode::kUnsupported,
              "{}: activation '{}' is not supported (gelu_pytorch_tanh)", source_name, act);
    const std::string position = f.get_string("position_embedding_type", "learned_absolute");
    MOE_CHECK(position == "learned_absolute" || position == "rope", ErrorCode::kUnsupported,
              "{}: position_embedding_type '{}' is not supported (learned_absolute or rope)", source_name, position);
    d.learned_positions = position == "learned_absolute";
    if (f.has("inference_method")) {
      const Fields m(f.object("inference_method"), source_name);
      if (m.has("threshold")) {
        d.default_routing = fmt::format("threshold:{}", m.get_double("threshold", 0) * c.num_experts);
      } else if (m.has("top_k")) {
        const int k = m.get_int("top_k", 1, 1, c.num_experts);
        d.default_routing = "topk:" + std::to_string(k);
        c.num_experts_per_tok = k;
      }
    }
  }
  c.rope = parse_rope(f, doc, default_theta);
  if (c.family == ModelFamily::kDeepseekV2 || c.family == ModelFamily::kDeepseekV3) detail::parse_deepseek_v2(f, &c);
  if (c.family == ModelFamily::kGptOss) detail::parse_gpt_oss(f, &c);
  if (c.family == ModelFamily::kGlm4Moe) detail::parse_glm4_moe(f, doc, &c);
  // Qwen3-30B-A3B-FP8 and Qwen3-235B-A22B-FP8: DeepSeek-V3's 128 x 128 blocks.
  if (c.family == ModelFamily::kQwen3Moe && f.has("quantization_config")) detail::parse_fp8_quantization(f, &c);
  MOE_CHECK(c.num_experts_per_tok <= std::max(c.num_experts, 1), ErrorCode::kCorrupt,
            "{}: num_experts_per_tok ({}) exceeds the number of experts ({})", source_name, c.num_experts_per_tok,
            c.num_experts);
  // Each family's name for the experts' width: absent, it was 0, and the error came later, about
  // tensor shapes.
  const bool own_width = c.family == ModelFamily::kQwen2Moe || c.family == ModelFamily::kQwen3Moe ||
                         c.family == ModelFamily::kDeepseekMoe || c.family == ModelFamily::kDeepseekV2 ||
                         c.family == ModelFamily::kDeepseekV3 || c.family == ModelFamily::kGlm4Moe;
  MOE_CHECK(c.num_experts == 0 || c.moe_intermediate_size > 0, ErrorCode::kCorrupt,
            "{} has no '{}' (the width of its {} experts)", source_name,
            own_width ? "moe_intermediate_size" : "intermediate_size", c.num_experts);
  fill_sparse_layers(f, &c);
  for (int l = 0; l < c.num_layers; ++l) {
    if (!c.is_sparse(l))
      MOE_CHECK(c.intermediate_size > 0, ErrorCode::kCorrupt, "{}: layer {} is dense but intermediate_size is missing",
                source_name, l);
  }
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& model) {
  const std::filesystem::path path = std::filesystem::is_directory(model) ? model / "config.json" : model;
  // An expert store where a model folder is meant (moe pack --model x.store) read as "not valid
  // JSON". Its magic (kStoreMagic, offload/store/store_format.h) is checked before reading it whole.
  char magic[8] = {};
  std::ifstream(path, std::ios::binary).read(magic, sizeof magic);
  MOE_CHECK(std::string_view(magic, sizeof magic) != "MOESTORE", ErrorCode::kInvalidArgument,
            "{} is an expert store, not a model folder or its config.json", path.string());
  return parse_model_config(read_file(path, "model config"), path.string());
}

ModelConfig load_model_config(const std::filesystem::path& model, int layers) {
  const std::filesystem::path path = std::filesystem::is_directory(model) ? model / "config.json" : model;
  const ModelConfig full = load_model_config(model);
  MOE_CHECK(layers >= 1 && layers <= full.num_layers, ErrorCode::kInvalidArgument,
            "{} has {} layers: keep 1 to {} of them, not {}", path.string(), full.num_layers, full.num_layers, layers);
  json doc = json::parse(read_file(path, "model config"));
  for (const char* key : {"num_hidden_layers", "n_layer"})
    if (doc.contains(key)) doc[key] = layers;
  if (doc.contains("layer_types") && doc["layer_types"].is_array()) doc["layer_types"].get_ref<json::array_t&>().resize(size_t(layers));
  if (doc.contains("max_window_layers") && doc["max_window_layers"].is_number_integer())
    doc["max_window_layers"] = std::min(doc["max_window_layers"].get<int64_t>(), int64_t(layers));
  return parse_model_config(doc.dump(), path.string() + fmt::format(" (first {} layers)", layers));
}

}  // namespace moe::loading
