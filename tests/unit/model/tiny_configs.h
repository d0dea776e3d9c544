#pragma once
// Tiny config.json texts of each family, for tests that run synthetic weights.
#include <string>

namespace moe::testing {

inline std::string tiny_config(const std::string& model_type) {
  std::string common = R"("vocab_size": 97, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0, "intermediate_size": 40, "torch_dtype": "bfloat16")";
  if (model_type == "mixtral")
    return R"({"model_type": "mixtral", "num_local_experts": 6, "num_experts_per_tok": 2, )" + common + "}";
  if (model_type == "qwen2_moe")
    return R"({"model_type": "qwen2_moe", "num_experts": 6, "num_experts_per_tok": 2, "moe_intermediate_size": 24,
      "shared_expert_intermediate_size": 48, "norm_topk_prob": false, "decoder_sparse_step": 1,
      "mlp_only_layers": [1], )" + common + "}";
  if (model_type == "qwen3_moe")
    return R"({"model_type": "qwen3_moe", "num_experts": 6, "num_experts_per_tok": 3, "moe_intermediate_size": 24,
      "norm_topk_prob": true, "decoder_sparse_step": 1, )" + common + "}";
  if (model_type == "olmoe")
    return R"({"model_type": "olmoe", "num_experts": 6, "num_experts_per_tok": 2, "clip_qkv": 4.0, )" + common + "}";
  if (model_type == "deepseek")
    return R"({"model_type": "deepseek", "n_routed_experts": 6, "num_experts_per_tok": 2, "moe_intermediate_size": 24,
      "n_shared_experts": 2, "first_k_dense_replace": 1, "moe_layer_freq": 1, "norm_topk_prob": true, )" + common + "}";
  // DeepSeek-V2/V3: multi-head latent attention (as many KV heads as heads), grouped routing.
  const std::string mla = R"("vocab_size": 97, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
    "num_key_value_heads": 4, "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "intermediate_size": 40, "moe_intermediate_size": 24, "torch_dtype": "bfloat16", "kv_lora_rank": 16,
    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 6, "n_routed_experts": 6, "first_k_dense_replace": 1)";
  if (model_type == "deepseek_v2")
    return R"({"model_type": "deepseek_v2", "q_lora_rank": null, "num_experts_per_tok": 2, "n_shared_experts": 1,
      "topk_method": "group_limited_greedy", "n_group": 3, "topk_group": 2, "routed_scaling_factor": 1.5, )" + mla + "}";
  if (model_type == "deepseek_v3")
    return R"({"model_type": "deepseek_v3", "q_lora_rank": 12, "num_experts_per_tok": 2, "n_shared_experts": 1,
      "n_group": 3, "topk_group": 2, "routed_scaling_factor": 2.5, "norm_topk_prob": true, )" + mla + "}";
  if (model_type == "glm4_moe")  // partial RoPE (half the head), QK norm, grouped sigmoid routing, one dense layer
    return R"({"model_type": "glm4_moe", "n_routed_experts": 6, "num_experts_per_tok": 2, "moe_intermediate_size": 24,
      "n_shared_experts": 1, "first_k_dense_replace": 1, "n_group": 3, "topk_group": 2, "routed_scaling_factor": 1.5,
      "use_qk_norm": true, "attention_bias": true, )" + common + "}";
  return "{}";
}

}  // namespace moe::testing
