#pragma once
// The architecture of a model, read from a Hugging Face config.json. One struct covers the
// families the engine runs; per-family defaults follow transformers' configuration classes
// (and DeepSeek's released remote code for model_type "deepseek").
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/cpu/activation.h"
#include "runtime/core/dtype.h"

namespace moe::loading {

enum class ModelFamily { kMixtral, kQwen2Moe, kQwen3Moe, kOlmoe, kDeepseekMoe, kMoePlusPlus, kDsMoe, kBam, kDeepseekV2, kDeepseekV3, kGptOss, kGlm4Moe };
std::string_view family_name(ModelFamily family);

// Where the q/k normalisation applies: none, per head over head_dim (Qwen3), or over the whole
// projection before heads are split (OLMoE).
enum class QkNorm { kNone, kPerHead, kFull };

// rope_scaling / rope_parameters, as transformers' ROPE_INIT_FUNCTIONS read them.
struct RopeConfig {
  double theta = 10000.0;
  std::string type = "default";  // default, linear, dynamic, yarn, llama3
  double factor = 1.0;
  double partial_rotary_factor = 1.0;
  int original_max_position_embeddings = 0;  // 0: absent
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;               // yarn
  bool truncate = true;                                   // yarn: floor/ceil the correction range
  double attention_factor = 0.0;                          // yarn; 0: derive from factor
  double mscale = 0.0, mscale_all_dim = 0.0;              // yarn (DeepSeek); 0: absent
};

// MoE++ (arXiv 2410.07348, released as model_type "MoE++"): after the FFN experts come
// `constant_experts` constant experts, one copy expert and one zero expert, in that order; the
// router may be two layers (Linear, tanh, Linear) and from the second MoE layer on adds a linear
// map of the previous layer's logits (the gating residual). See docs/MODEL_CONFIGS.md.
struct MoePlusPlusConfig {
  int constant_experts = 2;
  bool two_layer_gate = true;
  bool logits_norm = false;       // logits / (std / gate_norm_std) before the softmax
  double gate_norm_std = 1.0;
  bool mixtral_gating = false;    // top-k of the logits, softmax over them (no zero-weight drop)
  bool no_input_scaling = false;  // moe_feature_no_mul_topk: experts see x, not top_k * x
  int zero_computation_experts() const { return constant_experts + 2; }
};

// DS-MoE (arXiv 2404.05567) in the layout of its public implementation (dense_moe): GPT-style
// blocks (LayerNorm, biases, GeLU-tanh MLP experts fused in c_fc/c_proj), attention experts that
// each own one query head per KV head, learned absolute positions or RoPE. See
// docs/MODEL_CONFIGS.md.
struct DsMoeConfig {
  int attention_experts = 0;  // num_attention_experts (default num_experts); query heads / KV heads
  bool learned_positions = true;
  std::string default_routing = "dense";  // from inference_method: "topk:K" or "threshold:EPS"
};

// BAM (arXiv 2408.08274): parallel blocks y = x + MoA(norm(x)) + MoE(norm(x)); the attention
// experts are soft-routed (all run, weighted by a softmax) and have their own K/V projections
// (Expert-KV) or share one (Shared-KV). See docs/MODEL_CONFIGS.md.
struct BamConfig {
  int attention_experts = 0;
  bool expert_kv = true;
};

// DeepSeek-V2/V3 multi-head latent attention, as transformers' DeepseekV2Attention computes it:
// q = q_b(norm(q_a(x))) (or q_proj(x) when q_lora_rank is null), [latent, k_pe] =
// kv_a_proj_with_mqa(x) with the latent RMS-normed (kv_a_layernorm), k and v of each head from
// kv_b_proj(latent); each head's q and k end in a RoPE part of qk_rope_head_dim, k's shared by
// the heads. The KV cache keeps [latent, rotated k_pe] (ModelConfig's head_dim, one KV head).
struct MlaConfig {
  int q_lora_rank = 0;   // 0: q_proj directly
  int kv_lora_rank = 0;  // 0: not MLA
  int qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  bool rope_interleave = true;  // RoPE pairs (2i, 2i+1) (V2; V3 by default); false: (i, i + d/2)
  double softmax_scale = 0;     // qk_head_dim^-0.5, times mscale(factor, mscale_all_dim)^2 under YaRN
  int qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

// DeepSeek-V2/V3 routing (transformers' DeepseekV2TopkRouter / DeepseekV3TopkRouter): V2 takes
// the softmax's top-k, from the best `topk_group` of `n_group` groups (a group's score: its best
// expert) under group_limited_greedy; V3 the sigmoid's, chosen with e_score_correction_bias added
// (a group's score: its two best), weighted by the unbiased scores, renormalised when
// norm_topk_prob. Both multiply the weights by routed_scaling_factor.
struct GroupRoutingConfig {
  bool sigmoid = false;          // V3 (noaux_tc); false: V2's softmax
  int n_group = 1, topk_group = 1;  // 1, 1: no group limit
  double routed_scaling_factor = 1.0;
};

// gpt-oss (transformers' GptOssConfig): attention sinks on every layer, biased experts whose
// gate_up_proj interleaves gate (even columns) and up (odd), and its clamped SwiGLU:
//   gate = min(gate, limit), up = clamp(up, -limit, limit), out = (up + 1) * gate * sigmoid(alpha * gate)
// The router has a bias and weights the top-k by a softmax over the chosen logits. Experts are
// bf16/f32 tensors, or MXFP4 as released (quantization_config quant_method "mxfp4").
struct GptOssConfig {
  double swiglu_alpha = 1.702, swiglu_limit = 7.0;
  bool mxfp4_experts = false;
};

// FP8 checkpoints (quantization_config quant_method "fp8", fmt "e4m3", as DeepSeek-V3, Kimi-K2 and
// the FP8 releases of Qwen3 and GLM-4.5 have them): a Linear whose weight is float8_e4m3fn has f32 block scales weight_scale_inv
// [ceil(out / block_rows), ceil(in / block_cols)] beside it (kernels/cpu/fp8.h); other tensors
// (modules_to_not_convert) keep their dtype. Weights only: activations stay f32, as in DeepSeek's
// reference bf16 GEMM and transformers' dequantize=True (its GPU kernel would also round them to
// FP8 under activation_scheme "dynamic").
struct Fp8Config {
  int block_rows = 0, block_cols = 0;  // 0: no FP8 weights
  bool enabled() const { return block_rows > 0; }
};

struct ModelConfig {
  ModelFamily family = ModelFamily::kMixtral;
  std::string model_type;
  int vocab_size = 0;
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;  // MLA: 1 (the latent row is the one KV head)
  int head_dim = 0;      // MLA: kv_lora_rank + qk_rope_head_dim (the cache's row, MlaConfig)
  int max_position_embeddings = 4096;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool attention_bias = false;  // q/k/v projections carry a bias (Qwen2-MoE's qkv_bias, attention_bias)
  bool output_bias = false;     // o_proj carries one too (attention_bias everywhere but Qwen2-MoE)
  QkNorm qk_norm = QkNorm::kNone;
  double clip_qkv = 0.0;        // OLMoE: clamp q, k, v to [-c, c]; 0: off
  int sliding_window = 0;       // 0: off
  // Layers that slide (Qwen2-MoE's and gpt-oss's layer_types); empty: every layer when sliding_window > 0.
  std::vector<bool> sliding_layers;
  int window_of(int layer) const {
    return sliding_layers.empty() || sliding_layers.at(static_cast<size_t>(layer)) ? sliding_window : 0;
  }
  bool tie_word_embeddings = false;
  cpu::Activation activation = cpu::Activation::kSilu;  // hidden_act of the gated MLPs (not DS-MoE's GeLU experts)

  // Dense MLP width (layers without experts) and routed expert width.
  int intermediate_size = 0;
  int moe_intermediate_size = 0;
  int num_experts = 0;  // routed FFN experts (the offloadable ones)
  int num_experts_per_tok = 0;
  MoePlusPlusConfig moe_plus_plus;  // family kMoePlusPlus only
  DsMoeConfig ds_moe;               // family kDsMoe only
  BamConfig bam;                    // family kBam only
  MlaConfig mla;                    // families kDeepseekV2 and kDeepseekV3 only
  GroupRoutingConfig group_routing; // families kDeepseekV2, kDeepseekV3 and kGlm4Moe only
  GptOssConfig gpt_oss;             // family kGptOss only
  Fp8Config fp8;                    // families kDeepseekV2, kDeepseekV3, kGlm4Moe and kQwen3Moe only
  bool attention_sinks() const { return family == ModelFamily::kGptOss; }
  bool is_mla() const { return mla.kv_lora_rank > 0; }
  // KV heads a layer's cache holds: BAM's Expert-KV keeps one set per attention expert; MLA one
  // latent row (num_kv_heads 1, head_dim kv_lora_rank + qk_rope_head_dim) that is both its keys
  // and its values, so its pool stores no separate values (kv_values_stored).
  int kv_cache_heads() const {
    return family == ModelFamily::kBam && bam.expert_kv ? num_kv_heads * bam.attention_experts : num_kv_heads;
  }
  bool kv_values_stored() const { return !is_mla(); }
  // Router outputs: the FFN experts plus MoE++'s zero-computation experts.
  int router_outputs() const {
    return num_experts + (family == ModelFamily::kMoePlusPlus ? moe_plus_plus.zero_computation_experts() : 0);
  }
  bool norm_topk_prob = false;
  // Shared experts: Qwen2-MoE has one with a sigmoid gate; DeepSeek has n of them fused into
  // one MLP of width moe_intermediate_size * n, ungated.
  int shared_expert_intermediate_size = 0;
  bool shared_expert_gated = false;

  // Which layers are sparse (MoE) and which dense.
  std::vector<bool> sparse_layers;

  std::vector<int32_t> eos_token_ids;
  int32_t bos_token_id = -1;
  DType dtype = DType::kBF16;  // dtype of the stored weights

  bool is_sparse(int layer) const { return sparse_layers.at(static_cast<size_t>(layer)); }
  int num_sparse_layers() const;
  // The model layers that have experts, in order: MoE layer i of a trace or plan is moe_layers()[i].
  std::vector<int> moe_layers() const;
  // A model layer's position among the MoE layers; -1 for a dense layer.
  int moe_layer_index(int layer) const;
};

// Throws moe::Error(kCorrupt) for malformed JSON or impossible values, (kUnsupported) for an
// unknown model_type, naming the source.
// fields_read: when given, receives the name of every top-level field the parse looked at, read
// or refused (the strict-config test checks that no field is silently ignored).
ModelConfig parse_model_config(std::string_view json_text, std::string_view source_name,
                               std::set<std::string>* fields_read = nullptr);
// A model folder (its config.json) or a config.json file.
ModelConfig load_model_config(const std::filesystem::path& model);
// The same shape with only its first `layers` decoder layers (a scaled-down model for speed
// runs on small machines: per-layer lists such as layer_types are cut to match). Throws
// moe::Error(kInvalidArgument) for a count outside 1..num_hidden_layers.
ModelConfig load_model_config(const std::filesystem::path& model, int layers);

}  // namespace moe::loading
