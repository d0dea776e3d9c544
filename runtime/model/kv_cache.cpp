#include "runtime/model/kv_cache.h"

#include <atomic>

#include "runtime/core/error.h"

namespace moe::model {
namespace {
uint64_t next_generation() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}
}  // namespace

KvCache::KvCache(int num_layers, int num_kv_heads, int head_dim, int64_t capacity)
    : row_(int64_t{num_kv_heads} * head_dim), capacity_(capacity), generation_(next_generation()) {
  MOE_CHECK(capacity > 0, ErrorCode::kInvalidArgument, "the KV cache needs room for at least one token");
  keys_.resize(size_t(num_layers));
  values_.resize(size_t(num_layers));
  for (int l = 0; l < num_layers; ++l) {
    keys_[size_t(l)].assign(size_t(capacity * row_), 0.0f);
    values_[size_t(l)].assign(size_t(capacity * row_), 0.0f);
  }
}

KvCache::KvCache(const KvCache& other)
    : row_(other.row_),
      capacity_(other.capacity_),
      length_(other.length_),
      generation_(next_generation()),
      keys_(other.keys_),
      values_(other.values_) {}

KvCache& KvCache::operator=(const KvCache& other) {
  if (this != &other) {
    row_ = other.row_;
    capacity_ = other.capacity_;
    length_ = other.length_;
    generation_ = next_generation();
    keys_ = other.keys_;
    values_ = other.values_;
  }
  return *this;
}

void KvCache::clear() {
  length_ = 0;
  generation_ = next_generation();
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
