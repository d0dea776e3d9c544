#include "runtime/engine/batch_benchmark.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "kernels/cpu/compute_peak.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/core/error.h"
#include "runtime/engine/scheduler.h"
#include "runtime/model/weight_walk.h"

namespace moe::engine {

double BatchDecodeResult::bound() const {
  const double a = bandwidth_bound(), b = compute_bound();
  return a > 0 && b > 0 ? std::min(a, b) : std::max(a, b);
}

BatchDecodeResult run_batched_decode(model::Transformer& model, const BatchDecodeOptions& o) {
  MOE_CHECK(o.batch >= 1 && o.prompt_tokens >= 1 && o.decode_steps >= 1, ErrorCode::kInvalidArgument,
            "a batched decode needs a batch, a prompt and decode steps");
  const loading::ModelConfig& c = model.config();
  BatchDecodeResult r;
  r.batch = o.batch;
  r.prompt_tokens = o.prompt_tokens;
  r.decode_steps = o.decode_steps;

  // Exactly the blocks the batch fills at its end: full occupancy.
  const int64_t per_sequence = o.prompt_tokens + o.decode_steps + 1;
  const int64_t blocks = o.batch * ((per_sequence + o.kv_block_tokens - 1) / o.kv_block_tokens);
  SchedulerOptions so;
  so.max_batch = o.batch;
  so.max_step_tokens = int64_t(o.batch) * o.prompt_tokens;  // every prefill in one step
  Scheduler scheduler(model, model.make_kv_pool(o.kv_block_tokens, blocks), so);
  model::GenerationOptions g;
  g.max_new_tokens = o.decode_steps + 1;  // the first comes from the prefill
  for (int s = 0; s < o.batch; ++s) {
    std::vector<int32_t> prompt(size_t(o.prompt_tokens));
    for (int i = 0; i < o.prompt_tokens; ++i) prompt[size_t(i)] = int32_t((int64_t(i) * 7919 + 13 + int64_t(s) * 104729) % c.vocab_size);
    scheduler.submit(std::move(prompt), g);
  }

  // Distinct experts per decode step, counted from the routing (layer by layer).
  bool decoding = false;
  int64_t experts = 0, assignments = 0;
  const model::RoutingHook previous = model.routing_hook();
  model.set_routing_hook([&](int layer, std::span<const int64_t> positions, model::RoutingDecision& d) {
    if (previous) previous(layer, positions, d);
    if (!decoding) return;
    experts += int64_t(std::set<int32_t>(d.experts.begin(), d.experts.end()).size());
    assignments += int64_t(d.experts.size());
  });
  try {
    int64_t produced = 0;
    while (produced < o.batch) {  // prefill: every sequence's first token
      for (const SequenceEvent& e : scheduler.step()) produced += e.token.has_value();
    }
    if (o.on_decode_start) o.on_decode_start();
    decoding = true;
    const auto start = std::chrono::steady_clock::now();
    int64_t generated = 0;
    for (int step = 0; step < o.decode_steps; ++step)
      for (const SequenceEvent& e : scheduler.step()) generated += e.token.has_value();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MOE_CHECK(scheduler.idle() && generated == int64_t(o.batch) * o.decode_steps, ErrorCode::kInternal,
              "the batched decode produced {} tokens, not {}", generated, int64_t(o.batch) * o.decode_steps);
    r.tokens_per_second = double(generated) / seconds;
  } catch (...) {
    model.set_routing_hook(previous);
    throw;
  }
  model.set_routing_hook(previous);

  const model::MatrixTotals w = model::matrix_totals(model.weights(), c);
  r.experts_per_step = double(experts) / o.decode_steps;
  r.weight_bytes_per_step = w.resident_bytes + r.experts_per_step * w.expert_bytes;
  r.flops_per_step = 2 * (double(o.batch) * w.dense_params + double(assignments) / o.decode_steps * w.expert_params +
                          double(o.batch) * w.lm_head_params);
  const model::KvBlockPool& pool = scheduler.pool();
  r.kv_bytes_per_token = scheduler.kv_bytes_per_token();
  r.kv_theoretical_bytes_per_token = double(model::KvBlockPool::token_bytes(c.num_layers, pool.row_size(), pool.with_values()));
  if (o.measure_ceilings) {
    r.read_bandwidth = cpu::measure_read_bandwidth(cpu::ThreadPool::global());
    r.fma_peak = cpu::measure_fma_peak(cpu::ThreadPool::global());
  }
  return r;
}

}  // namespace moe::engine
