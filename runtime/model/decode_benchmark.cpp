#include "runtime/model/decode_benchmark.h"

#include <chrono>
#include <set>

#include "kernels/cpu/compute_peak.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/model/sampler.h"
#include "runtime/model/weight_walk.h"

namespace moe::model {

DecodeBenchmark run_decode_benchmark(Transformer& model, int prompt_tokens, int decode_tokens, bool warm_up,
                                     LogitComparison* compare, const std::function<void()>& on_decode_start) {
  const loading::ModelConfig& c = model.config();
  DecodeBenchmark b;
  b.prompt_tokens = prompt_tokens;
  b.decode_tokens = decode_tokens;

  // Count the experts each decode step really uses, and the prompt's token-expert pairs.
  int64_t experts_used = 0, prompt_assignments = 0;
  enum class Phase { kWarmUp, kPrefill, kDecode } phase = Phase::kWarmUp;
  const RoutingHook previous = model.routing_hook();  // a replayed trace, a recorder: they keep working
  model.set_routing_hook([&](int layer, std::span<const int64_t> positions, RoutingDecision& d) {
    if (previous) previous(layer, positions, d);
    if (phase == Phase::kDecode) experts_used += int64_t(std::set<int32_t>(d.experts.begin(), d.experts.end()).size());
    if (phase == Phase::kPrefill) prompt_assignments += int64_t(d.experts.size());
  });
  KvCache cache = model.make_cache(prompt_tokens + decode_tokens + 1);
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
  for (int i = 0; i < prompt_tokens; ++i) prompt[size_t(i)] = (i * 7919 + 13) % c.vocab_size;
  if (warm_up) {  // a first pass touches every weight the prompt needs (page faults, caches), untimed
    KvCache scratch = model.make_cache(prompt_tokens);
    model.forward(prompt, scratch);
  }
  phase = Phase::kPrefill;
  const auto prefill_start = std::chrono::steady_clock::now();
  std::vector<float> logits = model.forward(prompt, cache);
  const double prefill_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - prefill_start).count();
  phase = Phase::kDecode;
  std::vector<int32_t> sequence = prompt;  // for `compare`: the tokens run, and the logits from the prompt's last on
  std::vector<float> seen;
  if (compare) {
    seen.reserve(size_t(decode_tokens + 1) * logits.size());
    seen = logits;
  }
  if (on_decode_start) on_decode_start();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < decode_tokens; ++i) {
    const int32_t token = argmax(logits);
    logits = model.forward(std::span(&token, 1), cache);
    if (!compare) continue;
    sequence.push_back(token);
    seen.insert(seen.end(), logits.begin(), logits.end());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  model.set_routing_hook(previous);
  if (compare) compare->add(sequence, prompt_tokens - 1, seen);

  // The matrices as loaded: int8/int4 ones (--weights) read fewer bytes.
  const MatrixTotals w = matrix_totals(model.weights(), c);
  // Prefill: every prompt token through the dense weights, each routed pair through its expert,
  // the LM head once (only the last token's logits are wanted).
  b.prefill_flops =
      2 * (double(prompt_tokens) * w.dense_params + double(prompt_assignments) * w.expert_params + w.lm_head_params);
  b.prefill_tokens_per_second = prompt_tokens / prefill_seconds;
  b.prefill_flops_per_second = b.prefill_flops / prefill_seconds;
  b.fma_peak = cpu::measure_fma_peak(cpu::ThreadPool::global());
  b.decode_tokens_per_second = decode_tokens / seconds;
  b.bytes_per_token = w.resident_bytes + double(experts_used) / decode_tokens * w.expert_bytes;
  b.achieved_bandwidth = b.bytes_per_token * b.decode_tokens_per_second;
  b.memcpy_bandwidth = cpu::measure_memcpy_bandwidth();
  b.read_bandwidth = cpu::measure_read_bandwidth(cpu::ThreadPool::global());
  return b;
}

}  // namespace moe::model
