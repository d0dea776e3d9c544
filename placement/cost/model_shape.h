#pragma once
// The sizes a placement needs from a model: parameter and byte counts of its dense parts and
// of each routed expert in each format. Built from config.json alone (no weights).
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/loading/model_config.h"

namespace moe::placement {

enum class ExpertFormat { kBF16, kInt8, kInt4 };
const char* format_name(ExpertFormat format);
ExpertFormat parse_expert_format(const std::string& name);  // "bf16", "int8", "int4"

struct ModelShape {
  std::string name;
  int num_layers = 0;         // all decoder layers
  int num_sparse_layers = 0;  // layers with routed experts
  int num_experts = 0;
  int top_k = 0;
  int hidden = 0;
  int num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t expert_params = 0;        // one routed expert (gate, up, down; DS-MoE: up + bias, down)
  int64_t attention_params = 0;     // one layer's q, k, v, o projections (BAM: every attention expert)
  int64_t dense_params = 0;         // everything but the routed experts, all layers
  int64_t shared_expert_params = 0; // per sparse layer, always computed (Qwen2-MoE, DeepSeek)
  int64_t dense_ffn_params = 0;     // per dense (non-MoE) layer
  std::vector<bool> sparse_layers;  // per decoder layer
  int64_t vocab = 0;

  int64_t expert_bytes(ExpertFormat format) const;
  int64_t dense_bytes() const { return 2 * dense_params; }  // bf16
  // In `format` (--weights int8|int4 --quantize all: groups of 32 with f32 scales).
  int64_t dense_bytes(ExpertFormat format) const;
  // bf16 KV cache of `batch` sequences of `context` tokens.
  int64_t kv_cache_bytes(int batch, int context) const;
  int64_t kv_bytes_per_token_layer() const { return int64_t(2) * num_kv_heads * head_dim * 2; }
};

ModelShape model_shape(const loading::ModelConfig& config, const std::string& name);
// A config.json file or a model folder holding one.
ModelShape load_model_shape(const std::string& path);

}  // namespace moe::placement
