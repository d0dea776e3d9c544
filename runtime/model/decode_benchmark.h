#pragma once
// Decode speed of a model on the CPU beside the bound its weight traffic implies: each decode
// step reads the resident weights it uses and its tokens' experts, so tokens/s times those
// bytes is a bandwidth, compared with memcpy bandwidth and with the bandwidth at which all
// threads can read memory, both measured in the same run. The prompt's prefill is timed too,
// its weight multiply-adds per second beside the f32 FMA peak of all threads, measured now.
#include <cstdint>
#include <functional>

#include "runtime/model/logit_comparison.h"
#include "runtime/model/transformer.h"

namespace moe::model {

struct DecodeBenchmark {
  int64_t prompt_tokens = 0;
  int64_t decode_tokens = 0;
  double prefill_tokens_per_second = 0;
  double prefill_flops = 0;           // the prompt's weight multiply-adds (x2), experts as routed
  double prefill_flops_per_second = 0;
  double fma_peak = 0;                // ceiling: f32 FMAs of all threads, measured now
  double decode_tokens_per_second = 0;
  double bytes_per_token = 0;        // weight bytes a decode step reads (distinct experts counted; int8/int4 with scales)
  double achieved_bandwidth = 0;     // bytes_per_token * tokens/s
  double memcpy_bandwidth = 0;       // ceiling: single-threaded memcpy, measured now
  double read_bandwidth = 0;         // stricter ceiling: every thread streaming memory
  double ratio() const { return memcpy_bandwidth > 0 ? achieved_bandwidth / memcpy_bandwidth : 0; }
  double read_ratio() const { return read_bandwidth > 0 ? achieved_bandwidth / read_bandwidth : 0; }
  double prefill_ratio() const { return fma_peak > 0 ? prefill_flops_per_second / fma_peak : 0; }
};

// warm_up: run the prompt once untimed first (leave it off where that would change what is
// measured: a replayed trace's position, an offloading cache's contents). With `compare`, the
// decoded sequence and its logits go to it after the timing (int8/int4 weights against the checkpoint's).
// `on_decode_start` runs between the prefill and the first timed decode step.
DecodeBenchmark run_decode_benchmark(Transformer& model, int prompt_tokens, int decode_tokens, bool warm_up = false,
                                     LogitComparison* compare = nullptr, const std::function<void()>& on_decode_start = {});

}  // namespace moe::model
