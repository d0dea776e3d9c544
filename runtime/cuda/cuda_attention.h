#pragma once
// Attention on one GPU over a device copy of the KV block pool. The copy follows one pool at a
// time, by its address and shape (a shared pool of many sequences, or a private cache's own), and
// in it the rows of each cache attended, by the cache's generation (a new cache, a copy or a
// clear changes it): each step appends the new rows, uploading first any rows of the host cache
// it lacks (after switching pools or being set mid-sequence), one copy per run of consecutive
// physical rows, and the kernels read the cache's block table (none for a contiguous cache). It
// runs the one-block-per-head kernel, or past kSplitFrom keys the split-over-keys kernel for
// decode and short chunks, and for longer chunks whenever the one-block kernel's scores (one
// float per key) would not fit a block's shared memory, in chunks of kSplitQueries. Sliding
// windows and DS-MoE's head masks as the CPU kernel takes them. The mirror lives in the device
// arena; a pool it has no room for is attended on the CPU. Agrees with the CPU kernel to
// rounding.
#include <cstdint>
#include <unordered_map>
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
  // A cache's rows on the device: per layer, how many of its first tokens are uploaded.
  struct Mirrored {
    std::vector<int64_t> valid;
    uint64_t used = 0;  // the step (tick_) that last attended it
  };
  // The counts of a cache: found, or new (all zero), dropping those of caches long gone first.
  Mirrored& mirrored(const model::KvCache& cache);
  static constexpr size_t kSweepFrom = 64;  // caches_ this big and more is swept of the idle

  DeviceArena& arena_;
  int device_;
  int64_t cpu_fallbacks_ = 0;
  uint64_t max_shared_ = 0;  // bytes of shared memory a block may opt into
  Stream stream_;
  // The pool mirrored: its address and shape.
  const model::KvBlockPool* pool_ = nullptr;
  int layers_ = 0;
  int64_t row_ = 0, block_tokens_ = 0, blocks_ = 0;
  DeviceArena::Block mirror_;  // keys then values, each [layers, blocks * block_tokens, row]; empty: no room
  std::unordered_map<uint64_t, Mirrored> caches_;  // by KvCache::generation
  uint64_t tick_ = 0, swept_ = 0;  // steps attended; the tick of the last sweep of caches_
  size_t sweep_at_ = kSweepFrom;   // the size of caches_ that sweeps it next
  uint64_t table_generation_ = 0;  // whose block table table_ holds, and how many entries
  size_t table_size_ = 0;
  DeviceBuffer q_, out_, workspace_, mask_, table_;
};

}  // namespace moe::cuda
