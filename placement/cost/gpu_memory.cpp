#include "placement/cost/gpu_memory.h"

#include <algorithm>

#include "runtime/core/error.h"

namespace moe::placement {
namespace {
constexpr uint64_t kActivations = uint64_t(256) << 20;  // pass buffers, workspaces, cuBLAS
double mib(uint64_t bytes) { return double(bytes) / double(1 << 20); }
}  // namespace

GpuMemorySplit split_gpu_memory(const ModelShape& shape, uint64_t budget, int64_t context, uint64_t expert_bytes) {
  GpuMemorySplit s;
  s.budget = budget;
  s.dense = uint64_t(shape.dense_bytes(shape.released_dense_format));  // FP8 releases' projections stay FP8 on the GPU
  s.kv = 2 * sizeof(float) * uint64_t(shape.num_layers) * uint64_t(std::max<int64_t>(context, 1)) * uint64_t(shape.num_kv_heads) *
         uint64_t(shape.head_dim);
  // The largest dense matrix a prefill widens to f32: the LM head, a q/o projection or an MLP's.
  const uint64_t h = uint64_t(shape.hidden);
  const uint64_t largest = std::max({uint64_t(shape.vocab) * h, uint64_t(shape.num_heads) * uint64_t(shape.head_dim) * h,
                                     uint64_t(shape.dense_ffn_params) / 3, uint64_t(shape.shared_expert_params) / 3});
  s.scratch = sizeof(float) * largest + kActivations;
  const uint64_t fixed = s.dense + s.kv + s.scratch;
  s.experts = budget > fixed ? budget - fixed : 0;
  const uint64_t every_expert = uint64_t(shape.num_sparse_layers) * uint64_t(shape.num_experts) * expert_bytes;
  s.experts = std::min(s.experts, every_expert);  // a model that fits takes no more than itself
  MOE_CHECK(s.experts >= expert_bytes, ErrorCode::kOutOfMemory,
            "a GPU budget of {:.1f} MiB leaves no room for an expert ({:.1f} MiB) beside the dense weights ({:.1f} MiB), the KV "
            "cache of {} tokens ({:.1f} MiB) and scratch ({:.1f} MiB): raise --gpu-mem",
            mib(budget), mib(expert_bytes), mib(s.dense), context, mib(s.kv), mib(s.scratch));
  return s;
}

}  // namespace moe::placement
