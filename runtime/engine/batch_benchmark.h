#pragma once
// Aggregate decode speed of `batch` sequences stepped together by the scheduler, beside the
// ceilings of one step on this machine measured in the same run: the weights it reads (resident
// matrices plus each distinct expert its tokens use, once for the whole batch) at the read
// bandwidth of all threads, and its multiply-adds at the f32 FMA peak. The KV cache's bytes per
// token at full occupancy are given beside the theoretical size (the blocks' slack).
#include <cstdint>
#include <functional>

#include "runtime/model/transformer.h"

namespace moe::engine {

struct BatchDecodeResult {
  int batch = 0;
  int64_t prompt_tokens = 0, decode_steps = 0;
  double tokens_per_second = 0;       // generated tokens of all sequences per second of decode steps
  double experts_per_step = 0;        // distinct (layer, expert) pairs a decode step runs
  double weight_bytes_per_step = 0;   // resident matrices + those experts, as loaded
  double flops_per_step = 0;          // weight multiply-adds (x2) of the step's tokens
  double read_bandwidth = 0, fma_peak = 0;  // measured now (0 when the caller skips them)
  double kv_bytes_per_token = 0;      // pool blocks in use at full occupancy per token held
  double kv_theoretical_bytes_per_token = 0;  // layers x kv heads x head_dim x 2 x 4 bytes (x 1 for MLA's latent)
  // Tokens/s if a step took only its weight reads at the read bandwidth, or only its FLOPs at peak.
  double bandwidth_bound() const { return weight_bytes_per_step > 0 && read_bandwidth > 0 ? batch * read_bandwidth / weight_bytes_per_step : 0; }
  double compute_bound() const { return flops_per_step > 0 && fma_peak > 0 ? batch * fma_peak / flops_per_step : 0; }
  double bound() const;  // the lower of the two
  double ratio() const { return bound() > 0 ? tokens_per_second / bound() : 0; }
  double kv_slack() const { return kv_theoretical_bytes_per_token > 0 ? kv_bytes_per_token / kv_theoretical_bytes_per_token - 1 : 0; }
};

struct BatchDecodeOptions {
  int batch = 1;
  int prompt_tokens = 16;
  int decode_steps = 32;
  int64_t kv_block_tokens = 16;
  bool measure_ceilings = true;
  std::function<void()> on_decode_start;  // after every prefill, before the timed steps
};

BatchDecodeResult run_batched_decode(model::Transformer& model, const BatchDecodeOptions& options);

}  // namespace moe::engine
