#pragma once
// The sizes a placement needs from a model: parameter and byte counts of its dense parts and
// of each routed expert in each format. Built from config.json alone (no weights).
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/loading/model_config.h"

namespace moe::placement {

// The proto's numbering (plan.proto Format). bf16, fp8 and mxfp4 are formats checkpoints are
// released in (the engine computes them from the checkpoint's bytes); int8 and int4 are the lossy
// copies `moe pack --formats` makes.
enum class ExpertFormat { kBF16, kInt8, kInt4, kFp8, kMxfp4 };
const char* format_name(ExpertFormat format);
ExpertFormat parse_expert_format(const std::string& name);  // "bf16", "int8", "int4", "fp8", "mxfp4"
// Not a lossy copy: the bits a release computes with.
inline bool released_precision(ExpertFormat format) { return format != ExpertFormat::kInt8 && format != ExpertFormat::kInt4; }

struct ModelShape {
  std::string name;
  int num_layers = 0;         // all decoder layers
  int num_sparse_layers = 0;  // layers with routed experts
  int num_experts = 0;
  int top_k = 0;
  int hidden = 0;
  int num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t expert_params = 0;        // one routed expert (gate, up, down; DS-MoE: up + bias, down)
  int64_t expert_fp8_blocks = 0;    // its matrices' 128 x 128 blocks (partial edge blocks whole), one f32 scale each
  int64_t attention_params = 0;     // one layer's q, k, v, o projections (BAM: every attention expert)
  int64_t dense_params = 0;         // everything but the routed experts, all layers
  int64_t dense_matrix_params = 0;  // of which the decoder's projections (FP8 in an FP8 release; not embeddings, norms, routers)
  ExpertFormat released_format = ExpertFormat::kBF16;  // the experts' in the config's release (quantization_config)
  ExpertFormat released_dense_format = ExpertFormat::kBF16;  // the dense projections' (fp8 releases: fp8)
  int64_t shared_expert_params = 0; // per sparse layer, always computed (Qwen2-MoE, DeepSeek)
  int64_t dense_ffn_params = 0;     // per dense (non-MoE) layer
  std::vector<bool> sparse_layers;  // per decoder layer
  int64_t vocab = 0;

  // bf16: 2 bytes a weight; int8/int4: 1 or 0.5 and an f32 scale per 128 (the store's copies);
  // fp8: 1 and an f32 scale per 128 x 128 block; mxfp4: 4.25 bits (an e8m0 scale per 32).
  int64_t expert_bytes(ExpertFormat format) const;
  int64_t dense_bytes() const { return 2 * dense_params; }  // bf16
  // In `format`: int8/int4 as --weights int8|int4 --quantize all (groups of 32 with f32 scales);
  // fp8 as an FP8 release (the projections in e4m3 with a scale per 128 x 128 block, counted per
  // 16384 weights; embeddings, norms and routers in bf16). Throws for mxfp4 (no release has dense MXFP4).
  int64_t dense_bytes(ExpertFormat format) const;
  // bf16 KV cache of `batch` sequences of `context` tokens.
  int64_t kv_cache_bytes(int batch, int context) const;
  int64_t kv_bytes_per_token_layer() const { return int64_t(2) * num_kv_heads * head_dim * 2; }
};

ModelShape model_shape(const loading::ModelConfig& config, const std::string& name);
// A config.json file or a model folder holding one.
ModelShape load_model_shape(const std::string& path);

}  // namespace moe::placement
