#include "placement/cost/model_shape.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/core/error.h"

namespace moe::placement {

const char* format_name(ExpertFormat format) {
  switch (format) {
    case ExpertFormat::kBF16: return "bf16";
    case ExpertFormat::kInt8: return "int8";
    case ExpertFormat::kInt4: return "int4";
    case ExpertFormat::kFp8: return "fp8";
    case ExpertFormat::kMxfp4: return "mxfp4";
  }
  return "?";
}

ExpertFormat parse_expert_format(const std::string& name) {
  for (const ExpertFormat f :
       {ExpertFormat::kBF16, ExpertFormat::kInt8, ExpertFormat::kInt4, ExpertFormat::kFp8, ExpertFormat::kMxfp4})
    if (name == format_name(f)) return f;
  fail(ErrorCode::kInvalidArgument, "unknown expert format '{}' (bf16, int8, int4, fp8 or mxfp4)", name);
}

int64_t ModelShape::expert_bytes(ExpertFormat format) const {
  const int64_t scales = expert_params / 128 * 4;  // one f32 scale per group of 128, as the store writes
  switch (format) {
    case ExpertFormat::kBF16: return 2 * expert_params;
    case ExpertFormat::kInt8: return expert_params + scales;
    case ExpertFormat::kInt4: return expert_params / 2 + scales;
    case ExpertFormat::kFp8: return expert_params + 4 * expert_fp8_blocks;
    case ExpertFormat::kMxfp4: return expert_params / 2 + expert_params / 32;
  }
  return 0;
}

int64_t ModelShape::dense_bytes(ExpertFormat format) const {
  const int64_t scales = dense_params / 32 * 4;
  switch (format) {
    case ExpertFormat::kBF16: return 2 * dense_params;
    case ExpertFormat::kInt8: return dense_params + scales;
    case ExpertFormat::kInt4: return dense_params / 2 + scales;
    case ExpertFormat::kFp8: {
      const int64_t blocks = (dense_matrix_params + 16383) / 16384;
      return 2 * (dense_params - dense_matrix_params) + dense_matrix_params + 4 * blocks;
    }
    case ExpertFormat::kMxfp4: fail(ErrorCode::kInvalidArgument, "no release keeps dense weights in mxfp4 (bf16, int8, int4 or fp8)");
  }
  return 0;
}

int64_t ModelShape::kv_cache_bytes(int batch, int context) const {
  return int64_t(batch) * context * num_layers * kv_bytes_per_token_layer();
}

ModelShape model_shape(const loading::ModelConfig& c, const std::string& name) {
  ModelShape s;
  s.name = name;
  s.num_layers = c.num_layers;
  s.num_sparse_layers = c.num_sparse_layers();
  s.num_experts = c.num_experts;
  s.top_k = c.num_experts_per_tok;
  s.hidden = c.hidden_size;
  s.num_heads = c.num_heads;
  s.num_kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim;
  s.vocab = c.vocab_size;
  s.sparse_layers = c.sparse_layers;
  s.shared_expert_params = 3 * int64_t(c.hidden_size) * c.shared_expert_intermediate_size;
  s.dense_ffn_params = 3 * int64_t(c.hidden_size) * c.intermediate_size;
  const int64_t h = c.hidden_size;
  const int64_t q_out = int64_t(c.num_heads) * c.head_dim, kv_out = int64_t(c.num_kv_heads) * c.head_dim;
  s.expert_params = 3 * h * c.moe_intermediate_size;
  const auto blocks = [](int64_t n) { return (n + 127) / 128; };
  s.expert_fp8_blocks = 3 * blocks(h) * blocks(c.moe_intermediate_size);
  if (c.fp8.enabled()) s.released_format = s.released_dense_format = ExpertFormat::kFp8;
  if (c.gpt_oss.mxfp4_experts) s.released_format = ExpertFormat::kMxfp4;
  s.attention_params = 2 * h * q_out + 2 * h * kv_out;
  int64_t per_layer = 2 * h;  // norms (and DS-MoE's shared c_proj bias)
  int64_t dense = int64_t(c.vocab_size) * h * (c.tie_word_embeddings ? 1 : 2) + h;
  if (c.family == loading::ModelFamily::kDsMoe) {  // GeLU experts with a first-layer bias; MoA router
    s.expert_params = 2 * h * c.moe_intermediate_size + c.moe_intermediate_size;
    s.attention_params += q_out + 2 * kv_out + h + h * c.ds_moe.attention_experts;  // biases, MoA router
    per_layer = 4 * h + h;  // LayerNorm weights and biases, c_proj's bias
    dense += h + (c.ds_moe.learned_positions ? int64_t(c.max_position_embeddings) * h : 0);  // ln_f bias
  } else if (c.is_mla()) {  // DeepSeek-V2/V3: q (or its LoRA pair), kv_a, kv_b and o, with the latent norms
    const loading::MlaConfig& m = c.mla;
    const int64_t heads = c.num_heads, qk = m.qk_head_dim();
    s.attention_params = (m.q_lora_rank > 0 ? h * m.q_lora_rank + m.q_lora_rank + int64_t(m.q_lora_rank) * heads * qk
                                            : h * heads * qk) +
                         h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank +
                         int64_t(m.kv_lora_rank) * heads * (m.qk_nope_head_dim + m.v_head_dim) + heads * m.v_head_dim * h;
  } else if (c.family == loading::ModelFamily::kBam) {  // every attention expert runs (soft routing)
    const int64_t A = c.bam.attention_experts;
    s.attention_params = A * 2 * h * q_out + (c.bam.expert_kv ? A : 1) * 2 * h * kv_out + h * A;
    per_layer = h;  // one norm feeds both branches
  }
  int64_t matrices = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    dense += s.attention_params + per_layer;
    const int64_t mlp = 3 * h * (c.is_sparse(l) ? c.shared_expert_intermediate_size : c.intermediate_size);
    dense += mlp + (c.is_sparse(l) ? h * c.num_experts : 0);
    matrices += s.attention_params + mlp;
  }
  s.dense_params = dense;
  s.dense_matrix_params = matrices;
  return s;
}

ModelShape load_model_shape(const std::string& path) {
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) p /= "config.json";
  const std::string name = p.filename() == "config.json" ? p.parent_path().filename().string() : p.stem().string();
  return model_shape(loading::load_model_config(p), name);
}

}  // namespace moe::placement
