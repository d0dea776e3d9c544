#pragma once
// Rotary position embeddings with the scaling variants of transformers'
// modeling_rope_utils (default, linear, dynamic NTK, YaRN, Llama 3), applied rotate-half style.
#include <cstdint>
#include <string>
#include <vector>

namespace moe::cpu {

struct RopeParams {
  int rotary_dim = 0;  // dimensions rotated (head_dim times the partial rotary factor)
  double theta = 10000.0;
  std::string type = "default";  // default, linear, dynamic, yarn, llama3
  double factor = 1.0;
  int original_max_position_embeddings = 0;  // 0: max_position_embeddings
  int max_position_embeddings = 0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  bool truncate = true;                                  // yarn: floor/ceil the correction range (gpt-oss: false)
  double attention_factor = 0.0;                         // yarn; 0: derived
  double mscale = 0.0, mscale_all_dim = 0.0;             // yarn (DeepSeek)
};

struct RopeTable {
  std::vector<float> inv_freq;     // rotary_dim / 2
  float attention_scaling = 1.0f;  // multiplies cos and sin
};

// seq_len matters only for "dynamic", which rescales once the sequence outgrows the original
// context. Throws moe::Error(kUnsupported) for an unknown type.
RopeTable make_rope_table(const RopeParams& params, int64_t seq_len);

// x: [n_tokens, n_heads, head_dim]; rotates the first rotary_dim dimensions of each head.
void apply_rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t rotary_dim,
                const int64_t* positions, const RopeTable& table);

}  // namespace moe::cpu
