#pragma once
// Attention on one GPU over a device copy of the KV cache. The copy follows one KvCache at a
// time, by its generation (a new cache, a copy or a clear changes it): each step appends the new
// rows, uploading first any rows of the host cache it lacks (after switching caches or being set
// mid-sequence). It runs the one-block-per-head kernel, or past kSplitFrom keys the split-over-
// keys kernel for decode and short chunks, and for longer chunks whenever the one-block kernel's
// scores (one float per key) would not fit a block's shared memory, in chunks of kSplitQueries.
// Sliding windows and DS-MoE's head masks as the CPU kernel takes them. The mirror lives in the
// device arena; a cache it has no room for is attended on the CPU. Agrees with the CPU kernel to
// rounding.
#include <cstdint>
#include <vector>

#include "runtime/cuda/cuda_resources.h"
#include "runtime/cuda/device_arena.h"
#include "runtime/model/attention_backend.h"

namespace moe::cuda {

class CudaAttention final : public model::AttentionBackend {
 public:
  static constexpr int64_t kSplitFrom = 4096, kSplitKeys = 1024, kSplitQueries = 64;
  // The mirror comes from `arena` (on its device), which must outlive this.
  explicit CudaAttention(DeviceArena& arena);
  ~CudaAttention() override;
  void attend(model::KvCache& cache, const model::AttentionStep& step, float* out) override;
  uint64_t device_bytes() const { return mirror_.bytes(); }
  int64_t cpu_fallbacks() const { return cpu_fallbacks_; }  // steps attended on the CPU

 private:
  DeviceArena& arena_;
  int device_;
  int64_t cpu_fallbacks_ = 0;
  uint64_t max_shared_ = 0;  // bytes of shared memory a block may opt into
  Stream stream_;
  uint64_t generation_ = 0;  // of the cache mirrored (KvCache::generation)
  int64_t capacity_ = 0, row_ = 0;
  std::vector<int64_t> valid_;  // rows mirrored per layer
  DeviceArena::Block mirror_;  // keys then values, each [layers, capacity, row]; empty: no room
  DeviceBuffer q_, out_, workspace_, mask_;
};

}  // namespace moe::cuda
