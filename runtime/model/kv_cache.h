#pragma once
// One sequence's keys and values for every layer (keys only under multi-head latent attention,
// whose latent row is both), f32, in blocks of a KvBlockPool: a block table maps the sequence's
// i-th block of tokens to a pool block. A cache made on its own owns a
// private pool of one block as long as its capacity (the single-sequence path: one contiguous
// run of rows per layer); a cache made in a shared pool takes blocks as it grows and returns
// them when cleared or destroyed.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/cpu/attention.h"
#include "runtime/model/kv_block_pool.h"

namespace moe::model {

class KvCache {
 public:
  // A cache with a private pool of `capacity` tokens (keys only when !with_values: KvBlockPool).
  KvCache(int num_layers, int num_kv_heads, int head_dim, int64_t capacity, bool with_values = true);
  // A cache in a shared pool, holding at most `capacity` tokens.
  KvCache(std::shared_ptr<KvBlockPool> pool, int64_t capacity);
  ~KvCache();
  // A copy is another cache (a generation of its own) with blocks of its own in the same pool
  // (throws moe::Error(kOutOfMemory) when the pool cannot hold them).
  KvCache(const KvCache& other);
  KvCache& operator=(const KvCache& other);
  KvCache(KvCache&& other) noexcept;
  KvCache& operator=(KvCache&& other) noexcept;

  int num_layers() const { return pool_->num_layers(); }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }
  // Pool blocks n more tokens would take beyond those held.
  int64_t blocks_needed(int64_t n) const;
  // Makes room for n more tokens: moe::Error(kInvalidArgument) past the capacity,
  // kOutOfMemory when the pool has too few free blocks (the cache is then unchanged).
  void reserve_more(int64_t n);
  // Counts n more tokens as held (reserving their room first if need be).
  void advance(int64_t n);
  // Empties the cache and returns its blocks to the pool.
  void clear();
  // Unique in the process to this cache's current contents' lineage: new at construction, copy
  // and clear(), so a device mirror (CudaAttention) knows when its rows no longer belong.
  uint64_t generation() const { return generation_; }

  // The row of `position` (< length() + reserved room) in `layer`: row_size() floats.
  float* key_row(int layer, int64_t position);
  float* value_row(int layer, int64_t position);
  const float* key_row(int layer, int64_t position) const;
  const float* value_row(int layer, int64_t position) const;
  // What the attention kernel reads for `layer`.
  cpu::KvBlocks blocks(int layer) const;
  std::span<const int32_t> block_table() const { return table_; }
  int64_t block_tokens() const { return pool_->block_tokens(); }
  // True when the cache's rows are one run, rows 0.. of each layer's pool storage (a private
  // cache): keys(layer) and values(layer) then address them directly.
  bool contiguous() const;
  float* keys(int layer) { return pool_->keys(layer); }
  float* values(int layer) { return pool_->values(layer); }
  const KvBlockPool& pool() const { return *pool_; }

  int64_t row_size() const { return pool_->row_size(); }  // floats per token per layer
  uint64_t nbytes() const;  // of the blocks held

 private:
  int64_t physical_row(int64_t position) const;
  void release_blocks();

  std::shared_ptr<KvBlockPool> pool_;
  bool private_pool_ = false;
  int64_t capacity_;
  int64_t length_ = 0;
  uint64_t generation_;
  std::vector<int32_t> table_;
};

// The tokens of one sequence in a batched step: rows first..first + count - 1 of the step's
// activations, at the positions following `cache`'s content.
struct TokenSpan {
  int64_t first = 0, count = 0;
  KvCache* cache = nullptr;
};

}  // namespace moe::model
