#include "runtime/engine/auto_tiers.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/core/error.h"
#include "runtime/core/size_parse.h"

namespace moe::engine {

uint64_t runtime_estimate(uint64_t baseline, int64_t step_tokens, int64_t hidden, int64_t intermediate, int64_t heads,
                          int64_t context) {
  const uint64_t rows = uint64_t(std::max<int64_t>(step_tokens, 1));
  const uint64_t activations = rows * uint64_t(16 * hidden + 4 * intermediate) * sizeof(float);
  const uint64_t scores = rows * uint64_t(heads) * uint64_t(std::max<int64_t>(context, 1)) * sizeof(float);
  return baseline + activations + scores;
}

TierChoice choose_tiers(const TierInputs& in) {
  TierChoice c;
  const uint64_t all_experts = uint64_t(in.experts) * in.expert_bytes;
  const uint64_t fixed = in.dense_bytes + in.kv_bytes + in.runtime_bytes;
  const std::string sizes = fmt::format("dense weights {} + KV cache {} + runtime {} (estimate: anonymous pages now, code, activations)", format_bytes(in.dense_bytes),
                                        format_bytes(in.kv_bytes), format_bytes(in.runtime_bytes));
  c.why.push_back(fmt::format("memory limit {} ({})", format_bytes(in.limit), in.limit_source));
  if (in.cuda) {
    // The GPU budget sizes the device caches (the engine's GPU split); the host keeps what it can
    // of the rest, so that misses come over PCIe instead of from disk.
    c.offload = true;
    const uint64_t room = in.limit > fixed ? in.limit - fixed : 0;
    c.host_bytes = std::min(room / std::max<uint64_t>(in.expert_bytes, 1) * in.expert_bytes, all_experts);
    c.why.push_back(fmt::format("host pool {} ({} of {} experts): what the limit leaves after {}", format_bytes(c.host_bytes),
                                c.host_bytes / std::max<uint64_t>(in.expert_bytes, 1), in.experts, sizes));
    return c;
  }
  if (fixed + all_experts <= in.limit) {
    c.why.push_back(fmt::format("the model fits: {} + {} experts of {} ({}) = {}, so it runs in place (no copies)", sizes,
                                in.experts, format_bytes(in.expert_bytes), format_bytes(all_experts),
                                format_bytes(fixed + all_experts)));
    return c;
  }
  // Room for one step's experts beside the dense part: the kernel's page cache keeps the hot
  // ones in place (measured: as few disk reads as the slots' hits, no copies, and no squeeze on
  // the dense weights' pages). Below one step's experts its LRU cycles, and the slots' admission
  // filter, which holds a stable subset, wins (scripts/bench_memlimit.sh, docs/PERF.md).
  const uint64_t step_experts = uint64_t(std::max<int64_t>(in.streamed_per_layer, 1)) * uint64_t(std::max(in.sparse_layers, 1)) *
                                in.expert_bytes;
  if (in.limit > fixed && in.limit - fixed >= step_experts) {
    c.why.push_back(fmt::format("the model does not fit ({} + {} experts = {}), but the {} left beside the dense part holds one "
                                "step's experts ({}): runs in place, the page cache keeps the hot experts without copies",
                                sizes, format_bytes(all_experts), format_bytes(fixed + all_experts),
                                format_bytes(in.limit - fixed), format_bytes(step_experts)));
    c.read_ahead = true;
    c.why.push_back("each layer's chosen experts are read ahead as soon as the router picks them (MADV_WILLNEED: large "
                    "requests, not one page fault at a time)");
    return c;
  }
  // Streamed experts pass through buffers of their own (and, read from a mapped checkpoint, the
  // page cache): room for one layer's worth of them.
  const uint64_t streaming = uint64_t(std::max<int64_t>(in.streamed_per_layer, 1)) * in.expert_bytes;
  const uint64_t needed = fixed + streaming + uint64_t(in.devices) * in.expert_bytes;
  if (needed > in.limit) {
    MOE_CHECK(!in.limit_given, ErrorCode::kOutOfMemory,
              "a memory limit of {} cannot hold {} + streaming buffers {} + one expert of {} per device ({} needed)",
              format_bytes(in.limit), sizes, format_bytes(streaming), format_bytes(in.expert_bytes), format_bytes(needed));
    c.why.push_back(fmt::format("the limit cannot hold even the dense part ({} + streaming {} + one expert per device): "
                                "runs in place and lets the kernel page the weights",
                                sizes, format_bytes(streaming)));
    c.read_ahead = true;
    return c;
  }
  c.offload = true;
  c.streaming_bytes = streaming;
  const uint64_t experts_room = in.limit - fixed - streaming;
  const uint64_t per_device = experts_room / uint64_t(in.devices) / in.expert_bytes * in.expert_bytes;
  c.device_bytes = per_device;
  const uint64_t slots = per_device / in.expert_bytes * uint64_t(in.devices);
  c.why.push_back(fmt::format("the model does not fit: {} + {} experts of {} ({}) = {}", sizes, in.experts,
                              format_bytes(in.expert_bytes), format_bytes(all_experts), format_bytes(fixed + all_experts)));
  c.why.push_back(fmt::format("experts get the rest less streaming buffers of {} ({} experts, one layer's step): {} slots "
                              "({}, {:.0f}% of the experts){}",
                              format_bytes(streaming), std::max<int64_t>(in.streamed_per_layer, 1), slots,
                              format_bytes(slots * in.expert_bytes), 100.0 * double(slots) / double(in.experts),
                              in.devices > 1 ? fmt::format(" over {} devices", in.devices) : ""));
  c.why.push_back("no host pool: a CPU device's slots are host memory already, a pool would hold the same bytes twice");
  c.why.push_back(in.from_store ? "the rest stream from the store with O_DIRECT (no page cache)"
                                : "the rest stream from the mapped checkpoint (pages released once copied; `moe pack` "
                                  "makes a store whose reads bypass the page cache)");
  return c;
}

}  // namespace moe::engine
