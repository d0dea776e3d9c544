#include "runtime/model/kv_cache.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

#include "runtime/core/error.h"

namespace moe::model {
namespace {
uint64_t next_generation() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}
}  // namespace

KvCache::KvCache(int num_layers, int num_kv_heads, int head_dim, int64_t capacity, bool with_values)
    : capacity_(capacity), generation_(next_generation()) {
  MOE_CHECK(capacity > 0, ErrorCode::kInvalidArgument, "the KV cache needs room for at least one token");
  pool_ = std::make_shared<KvBlockPool>(num_layers, int64_t{num_kv_heads} * head_dim, capacity, 1, with_values);
  private_pool_ = true;
}

KvCache::KvCache(std::shared_ptr<KvBlockPool> pool, int64_t capacity)
    : pool_(std::move(pool)), capacity_(capacity), generation_(next_generation()) {
  MOE_CHECK(pool_ != nullptr, ErrorCode::kInternal, "a KV cache needs a pool");
  MOE_CHECK(capacity > 0, ErrorCode::kInvalidArgument, "the KV cache needs room for at least one token");
}

KvCache::~KvCache() { release_blocks(); }

KvCache::KvCache(const KvCache& other) : pool_(), capacity_(0), generation_(0) { *this = other; }

KvCache& KvCache::operator=(const KvCache& other) {
  if (this == &other) return *this;
  release_blocks();
  // A private pool is copied whole; a shared one lends the copy blocks of its own.
  pool_ = other.private_pool_ ? std::make_shared<KvBlockPool>(other.num_layers(), other.row_size(), other.block_tokens(), 1,
                                                             other.pool_->with_values())
                              : other.pool_;
  private_pool_ = other.private_pool_;
  capacity_ = other.capacity_;
  length_ = 0;
  generation_ = next_generation();
  reserve_more(other.length_);
  const size_t bytes = sizeof(float) * size_t(row_size());
  for (int l = 0; l < num_layers(); ++l)
    for (int64_t p = 0; p < other.length_; ++p) {
      std::memcpy(key_row(l, p), other.key_row(l, p), bytes);
      if (pool_->with_values()) std::memcpy(value_row(l, p), other.value_row(l, p), bytes);
    }
  length_ = other.length_;
  return *this;
}

KvCache::KvCache(KvCache&& other) noexcept
    : pool_(std::move(other.pool_)),
      private_pool_(other.private_pool_),
      capacity_(other.capacity_),
      length_(other.length_),
      generation_(other.generation_),
      table_(std::move(other.table_)) {
  other.table_.clear();
  other.length_ = 0;
}

KvCache& KvCache::operator=(KvCache&& other) noexcept {
  if (this != &other) {
    release_blocks();
    pool_ = std::move(other.pool_);
    private_pool_ = other.private_pool_;
    capacity_ = other.capacity_;
    length_ = other.length_;
    generation_ = other.generation_;
    table_ = std::move(other.table_);
    other.table_.clear();
    other.length_ = 0;
  }
  return *this;
}

void KvCache::release_blocks() {
  if (pool_)
    for (const int32_t b : table_) pool_->release(b);
  table_.clear();
}

void KvCache::clear() {
  release_blocks();
  length_ = 0;
  generation_ = next_generation();
}

int64_t KvCache::blocks_needed(int64_t n) const {
  const int64_t bt = block_tokens();
  const int64_t want = (length_ + n + bt - 1) / bt;
  return std::max<int64_t>(0, want - int64_t(table_.size()));
}

void KvCache::reserve_more(int64_t n) {
  MOE_CHECK(n >= 0 && length_ + n <= capacity_, ErrorCode::kInvalidArgument,
            "the sequence would reach {} tokens; the KV cache holds {}", length_ + n, capacity_);
  const int64_t need = blocks_needed(n);
  MOE_CHECK(need <= pool_->free_blocks(), ErrorCode::kOutOfMemory,
            "the KV cache needs {} more blocks of {} tokens; the pool has {} free of {}", need, block_tokens(),
            pool_->free_blocks(), pool_->num_blocks());
  for (int64_t i = 0; i < need; ++i) table_.push_back(*pool_->allocate());
}

void KvCache::advance(int64_t n) {
  if (blocks_needed(n) > 0 || length_ + n > capacity_) reserve_more(n);
  length_ += n;
}

int64_t KvCache::physical_row(int64_t position) const {
  const int64_t bt = block_tokens();
  return int64_t(table_[size_t(position / bt)]) * bt + position % bt;
}

float* KvCache::key_row(int layer, int64_t position) { return pool_->keys(layer) + physical_row(position) * row_size(); }
float* KvCache::value_row(int layer, int64_t position) { return pool_->values(layer) + physical_row(position) * row_size(); }
const float* KvCache::key_row(int layer, int64_t position) const {
  return std::as_const(*pool_).keys(layer) + physical_row(position) * row_size();
}
const float* KvCache::value_row(int layer, int64_t position) const {
  return std::as_const(*pool_).values(layer) + physical_row(position) * row_size();
}

cpu::KvBlocks KvCache::blocks(int layer) const {
  cpu::KvBlocks b;
  b.keys = std::as_const(*pool_).keys(layer);
  b.values = std::as_const(*pool_).values(layer);
  b.table = table_.data();
  b.block_tokens = block_tokens();
  return b;
}

bool KvCache::contiguous() const {
  for (size_t i = 0; i < table_.size(); ++i)
    if (table_[i] != int32_t(i)) return false;
  return true;
}

uint64_t KvCache::nbytes() const { return uint64_t(table_.size()) * pool_->block_bytes(); }

}  // namespace moe::model
