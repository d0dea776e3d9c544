#pragma once
// How one GPU's budget (--gpu-mem under --backend cuda) divides among what the engine keeps on
// it: the resident dense weights and the KV cache mirror (GPU 0), scratch for one step
// (activations, the f32 widening of the largest dense matrix during prefill) and the expert
// cache, which gets the rest. The device arena holds all but the scratch.
#include <cstdint>

#include "placement/cost/model_shape.h"

namespace moe::placement {

struct GpuMemorySplit {
  uint64_t budget = 0;
  uint64_t dense = 0;    // dense weights as released, bf16 or FP8 (an upper bound: the embedding table stays on the host)
  uint64_t kv = 0;       // f32 keys and values of `context` tokens
  uint64_t scratch = 0;  // per-step buffers, outside the arena
  uint64_t experts = 0;  // the expert cache, per device: the rest, at most every expert
  // The arena: its parts, plus a 256-byte piece for each of the executor's two allocations (the
  // plan's pinned experts, the cache's slots), which the arena rounds up.
  uint64_t arena(int device) const { return experts + 512 + (device == 0 ? dense + kv : 0); }
};

// expert_bytes: one expert's slot as the executor lays it out (ExpertLayout::bytes). Throws
// moe::Error(kOutOfMemory), listing the parts, when the budget leaves no room for one expert.
GpuMemorySplit split_gpu_memory(const ModelShape& shape, uint64_t budget, int64_t context, uint64_t expert_bytes);

}  // namespace moe::placement
