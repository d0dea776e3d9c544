#include "offload/executor/host_tier.h"

#include <algorithm>
#include <cstring>

namespace moe::offload {

HostTier::HostTier(const ExpertBacking& backing, uint64_t budget) : backing_(backing) {
  if (budget >= backing.layout().bytes) {
    pool_ = std::make_unique<HostPool>(budget, /*try_pinned=*/true);
    const auto [base, bytes] = pool_->arena();
    std::memset(base, 0, bytes);  // fault the pages in now, not during the first tokens
  }
}

bool HostTier::load(ExpertKey key, bool pinned) {
  if (!pool_) return false;
  auto block = pool_->allocate(backing_.layout().bytes);
  while (!block && !pinned && !lru_.empty()) {  // make room from the unpinned copies
    const ExpertKey victim = lru_.back();
    lru_.pop_back();
    pool_->free(blocks_.at(victim));
    blocks_.erase(victim);
    block = pool_->allocate(backing_.layout().bytes);
  }
  if (!block) return false;
  backing_.read(key, block->data, block->bytes);
  blocks_[key] = *block;
  if (pinned) pinned_.insert(key);
  else lru_.push_front(key);
  return true;
}

bool HostTier::pin(ExpertKey key) {
  std::lock_guard lock(mutex_);
  if (blocks_.count(key)) return true;
  return load(key, /*pinned=*/true);
}

HostTier::Source HostTier::copy_out(ExpertKey key, std::byte* dst, const std::atomic<bool>* cancelled) {
  std::lock_guard lock(mutex_);
  auto it = blocks_.find(key);
  Source source = Source::kHost;
  if (it == blocks_.end()) {
    source = Source::kBacking;
    if (!load(key, /*pinned=*/false)) {
      backing_.read(key, dst);
      return source;
    }
    it = blocks_.find(key);
  } else if (!pinned_.count(key)) {
    lru_.splice(lru_.begin(), lru_, std::find(lru_.begin(), lru_.end(), key));
  }
  const uint64_t total = backing_.layout().bytes;
  for (uint64_t at = 0; at < total; at += kChunkBytes) {
    if (cancelled && cancelled->load()) return Source::kCancelled;
    std::memcpy(dst + at, it->second.data + at, std::min(kChunkBytes, total - at));
  }
  return source;
}

}  // namespace moe::offload
