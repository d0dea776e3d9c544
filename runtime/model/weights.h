#pragma once
// A model's weights, grouped the way the forward pass uses them. Tensors view the source's
// memory (mmap) where possible; names follow each family's Hugging Face checkpoints.
#include <vector>

#include "runtime/core/tensor.h"
#include "runtime/loading/model_config.h"
#include "runtime/loading/tensor_slice.h"
#include "runtime/loading/weight_source.h"
#include "runtime/model/weight_format.h"

namespace moe::model {

// y = x W^T + b, W stored [out_features, in_features] as in torch.nn.Linear. An int8/int4 weight
// (--weights) carries its group scales beside it, in the layout of kernels/cpu/quantize.h; an FP8
// one (a checkpoint's float8_e4m3fn) its block scales (loading::Fp8Config, kernels/cpu/fp8.h).
struct Linear {
  Tensor weight;
  Tensor bias;    // undefined when absent
  Tensor scales;  // int8/int4 weights: f32 [out_features, in_features / group size]; else undefined
  Tensor block_scales;  // fp8 weights: f32 weight_scale_inv [ceil(out / block_rows), ceil(in / block_cols)]
  int block_rows = 0, block_cols = 0;
  Tensor exponents;  // mxfp4 weights (DType::kMxfp4 [out, in]): e8m0 u8 [out, in / 32] (kernels/cpu/mxfp4.h)
  int64_t out_features() const { return weight.dim(0); }
  int64_t in_features() const { return weight.dim(1); }
  bool quantized() const { return scales.defined(); }
  bool fp8() const { return block_scales.defined(); }
  bool mxfp4() const { return exponents.defined(); }
  int group_size() const { return quantized() ? int(in_features() / scales.dim(1)) : 0; }
  size_t nbytes() const {
    return weight.nbytes() + (bias.defined() ? bias.nbytes() : 0) + (scales.defined() ? scales.nbytes() : 0) +
           (block_scales.defined() ? block_scales.nbytes() : 0) + (exponents.defined() ? exponents.nbytes() : 0);
  }
};

// An MLP: SwiGLU down(silu(gate(x)) * up(x)) for routed experts, shared experts and dense MLPs;
// without a gate, DS-MoE's GeLU expert down(gelu_tanh(up(x) + up.bias)), whose bias is f32 (the
// second layer's bias is shared by a layer's experts and added once by the layer); or, with
// swiglu_limit > 0, one gpt-oss expert: up is its fused gate_up [2I, H] (rows interleave gate and
// up), down(clamped_swiglu(up(x) + up.bias) + down.bias, gpt_oss.h), both biases f32.
struct GatedMlp {
  Linear gate, up, down;
  float swiglu_alpha = 0, swiglu_limit = 0;
  bool gated() const { return gate.weight.defined(); }
  bool clamped() const { return swiglu_limit > 0; }
  size_t nbytes() const { return (gated() ? gate.nbytes() : 0) + up.nbytes() + down.nbytes(); }
};

struct AttentionWeights {
  Linear q, k, v, o;
  Tensor q_norm, k_norm;  // per head [head_dim] or full [heads * head_dim]; undefined when absent
  Tensor sinks;           // gpt-oss: one attention-sink logit per head [heads]
};

// DeepSeek-V2/V3 multi-head latent attention (loading::MlaConfig), in transformers' names under
// self_attn.: q_proj, or q_a_proj, q_a_layernorm and q_b_proj; kv_a_proj_with_mqa, kv_a_layernorm,
// kv_b_proj and o_proj. q_a, kv_a and o carry biases with attention_bias.
struct MlaWeights {
  Linear q;          // [heads * qk_head_dim, hidden] when q_lora_rank is null
  Linear q_a, q_b;   // [q_lora_rank, hidden], [heads * qk_head_dim, q_lora_rank]
  Tensor q_a_norm;   // [q_lora_rank]
  Linear kv_a;       // [kv_lora_rank + qk_rope_head_dim, hidden]
  Tensor kv_a_norm;  // [kv_lora_rank]
  Linear kv_b;       // [heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
  Linear o;          // [hidden, heads * v_head_dim]
  bool defined() const { return kv_a.weight.defined(); }
};

// A MoE++ constant expert: softmax(mix x) . [x, constant].
struct ConstantExpert {
  Tensor constant;  // [hidden]
  Linear mix;       // [2, hidden]
};

// gpt-oss's routed experts (transformers' GptOssExperts): all of a layer's in one set of
// tensors, as rows of outputs: gate_up [E, 2I, H], whose rows interleave gate (even) and up
// (odd), and down [E, H, I], with biases [E, 2I] and [E, H]. A bf16/f32 checkpoint stores
// gate_up_proj [E, H, 2I] and down_proj [E, I, H] (x @ W): the loader keeps transposed copies in
// the stored dtype (an expert store holds each expert transposed already). An MXFP4 one stores
// *_blocks [E, rows, cols / 32, 16] and *_scales [E, rows, cols / 32] (kernels/cpu/mxfp4.h),
// already rows of outputs: viewed in place (kU8 tensors).
struct GptOssExpertWeights {
  Tensor gate_up, down;                // bf16/f32 matrices, or MXFP4 blocks
  Tensor gate_up_scales, down_scales;  // MXFP4's e8m0 scales; undefined otherwise
  Tensor gate_up_bias, down_bias;
  float swiglu_alpha = 0, swiglu_limit = 0;  // loading::GptOssConfig's
  // From an expert store's blobs, or converted by --weights: each expert already cut as
  // gpt_oss_expert cuts the fused tensors, which are then undefined.
  std::vector<GatedMlp> cut;
  bool defined() const { return gate_up.defined() || !cut.empty(); }
  bool mxfp4() const { return gate_up_scales.defined() || (!cut.empty() && cut.front().up.mxfp4()); }
  int64_t experts() const { return gate_up.defined() ? gate_up.dim(0) : int64_t(cut.size()); }
  size_t nbytes() const {
    size_t n = 0;
    for (const Tensor* t : {&gate_up, &down, &gate_up_scales, &down_scales, &gate_up_bias, &down_bias})
      n += t->defined() ? t->nbytes() : 0;
    for (const GatedMlp& e : cut) n += e.nbytes();
    return n;
  }
};

// Expert e of a layer's gpt-oss experts as a GatedMlp of the clamped form: views of the fused
// tensors (`w` must outlive it; MXFP4 blocks as DType::kMxfp4 with their exponents), the biases
// copied to f32; or the store's cut expert.
GatedMlp gpt_oss_expert(const GptOssExpertWeights& w, int64_t e);

struct MoeWeights {
  Linear router;                   // [num_experts, hidden] (MoE++ two-layer gate: its first layer; gpt-oss's has a bias)
  Tensor router_bias;              // DeepSeek-V3: e_score_correction_bias [num_experts], for the choice only
  std::vector<GatedMlp> experts;   // resident routed experts (empty when an expert store serves them)
  GatedMlp shared;                 // shared expert(s); undefined weights when absent
  Linear shared_gate;              // Qwen2-MoE: sigmoid gate [1, hidden]
  Linear router2;                  // MoE++ two-layer gate: [router outputs, 8 x router outputs]
  Linear gate_map;                 // MoE++ gating residual: [router outputs, router outputs]
  std::vector<ConstantExpert> constants;  // MoE++
  GptOssExpertWeights gpt_oss;     // gpt-oss's routed experts (never in `experts`: they are not SwiGLU)
  bool has_shared() const { return shared.gate.weight.defined(); }
};

// DS-MoE's block in dense_moe's layout (GPT names under transformer.h.{l}.).
struct DsMoeWeights {
  Tensor ln_1_bias, ln_2_bias;  // the weights are input_norm / post_attention_norm
  Linear c_attn;                // fused q, k, v [H + 2 kv hd, H], with bias
  Linear attn_proj;             // [H, H], with bias
  Linear attn_gate;             // [E, H]: the attention experts' router
  Tensor mlp_proj_bias;         // [H]: c_proj's bias, shared by the MLP experts
  // The MLP experts (rows of c_fc, columns of c_proj) are MoeWeights::experts; mlp.gate its router.
};

// BAM's mixture of attention experts (our convention under model.layers.{l}.self_attn.).
struct BamAttentionWeights {
  Linear router;                             // [A, H]
  std::vector<AttentionWeights> experts;     // q, o each; k, v too under Expert-KV
  Linear shared_k, shared_v;                 // Shared-KV
};

struct LayerWeights {
  Tensor input_norm, post_attention_norm;
  BamAttentionWeights bam;  // family kBam only
  DsMoeWeights ds;  // family kDsMoe only
  AttentionWeights attention;
  MlaWeights mla;  // families kDeepseekV2 and kDeepseekV3 only
  bool sparse = false;
  GatedMlp dense_mlp;  // when !sparse
  MoeWeights moe;      // when sparse
};

struct ModelWeights {
  Tensor embed_tokens;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  Tensor final_norm;
  Linear lm_head;  // [vocab, hidden]; the embedding when tied (unless --quantize lm-head made it a copy)
  Tensor position_embeddings, final_norm_bias;  // DS-MoE: learned positions; LayerNorm's bias
};

// The names of one routed expert's tensors (gate, up, down; DS-MoE's GeLU experts: up with its
// bias, and down): the checkpoint's own, or slices of its fused tensors (loading/tensor_slice.h).
// gpt-oss's experts (fused gate_up with biases) are moe::Error(kUnsupported).
using loading::ExpertTensorNames;
ExpertTensorNames expert_tensor_names(const loading::ModelConfig& config, int layer, int expert);

struct LoadOptions {
  bool load_routed_experts = true;  // false: an expert store serves them on demand
  WeightFormat weights;             // int8/int4: converted at load (model_loader.h), else as stored
};

// Checks every shape against the config; a missing or misshapen tensor is one clear error.
ModelWeights load_weights(const loading::ModelConfig& config, const loading::WeightSource& source,
                          const LoadOptions& options = {});

// Bytes of the weights that are always resident (everything but routed experts) and of one
// routed expert, from the config alone.
struct WeightBytes {
  uint64_t resident = 0;
  uint64_t per_expert = 0;
  uint64_t all_experts = 0;
};
WeightBytes weight_bytes(const loading::ModelConfig& config);

}  // namespace moe::model
