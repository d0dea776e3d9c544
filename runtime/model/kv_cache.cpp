#include "runtime/model/kv_cache.h"

#include "runtime/core/error.h"

namespace moe::model {

KvCache::KvCache(int num_layers, int num_kv_heads, int head_dim, int64_t capacity)
    : row_(int64_t{num_kv_heads} * head_dim), capacity_(capacity) {
  MOE_CHECK(capacity > 0, ErrorCode::kInvalidArgument, "the KV cache needs room for at least one token");
  keys_.resize(size_t(num_layers));
  values_.resize(size_t(num_layers));
  for (int l = 0; l < num_layers; ++l) {
    keys_[size_t(l)].assign(size_t(capacity * row_), 0.0f);
    values_[size_t(l)].assign(size_t(capacity * row_), 0.0f);
  }
}

void KvCache::reserve_more(int64_t n) const {
  MOE_CHECK(length_ + n <= capacity_, ErrorCode::kInvalidArgument,
            "the sequence would reach {} tokens; the KV cache holds {}", length_ + n, capacity_);
}

void KvCache::advance(int64_t n) {
  reserve_more(n);
  length_ += n;
}

uint64_t KvCache::nbytes() const { return 2 * keys_.size() * uint64_t(capacity_ * row_) * sizeof(float); }

}  // namespace moe::model
