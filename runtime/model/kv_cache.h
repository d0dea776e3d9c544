#pragma once
// Keys and values of every layer for the tokens seen so far, f32, laid out per layer as
// [capacity, kv_heads, head_dim] so the attention kernel reads one contiguous block.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace moe::model {

class KvCache {
 public:
  KvCache(int num_layers, int num_kv_heads, int head_dim, int64_t capacity);
  // A copy is another cache: it gets a generation of its own.
  KvCache(const KvCache& other);
  KvCache& operator=(const KvCache& other);
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;

  int num_layers() const { return int(keys_.size()); }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }
  // Throws moe::Error(kInvalidArgument) when n more tokens would not fit.
  void reserve_more(int64_t n) const;
  void advance(int64_t n);
  void clear();
  // Unique in the process to this cache's current contents' lineage: new at construction, copy
  // and clear(), so a device mirror (CudaAttention) knows when its rows no longer belong.
  uint64_t generation() const { return generation_; }

  float* keys(int layer) { return keys_[size_t(layer)].data(); }
  float* values(int layer) { return values_[size_t(layer)].data(); }
  int64_t row_size() const { return row_; }  // floats per token per layer
  uint64_t nbytes() const;

 private:
  int64_t row_;
  int64_t capacity_;
  int64_t length_ = 0;
  uint64_t generation_;
  std::vector<std::vector<float>> keys_, values_;
};

}  // namespace moe::model
