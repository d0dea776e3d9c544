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
    pool_->free(held_.at(victim).block);
    held_.erase(victim);
    block = pool_->allocate(backing_.layout().bytes);
  }
  if (!block) return false;
  backing_.read(key, block->data, block->bytes);
  Held& h = held_[key];
  h.block = *block;
  h.pinned = pinned;
  if (!pinned) h.lru = lru_.insert(lru_.begin(), key);
  return true;
}

bool HostTier::pin(ExpertKey key) {
  std::lock_guard lock(mutex_);
  const auto it = held_.find(key);
  if (it == held_.end()) return load(key, /*pinned=*/true);
  if (!it->second.pinned) {  // held as a cached copy: it stays from now on
    lru_.erase(it->second.lru);
    it->second.pinned = true;
  }
  return true;
}

HostTier::Source HostTier::copy_out(ExpertKey key, const Write& write, const std::atomic<bool>* cancelled) {
  return copy(key, write, nullptr, cancelled);
}

HostTier::Source HostTier::copy_out(ExpertKey key, std::byte* dst, const std::atomic<bool>* cancelled) {
  return copy(key, [dst](uint64_t offset, const std::byte* src, uint64_t bytes) { std::memcpy(dst + offset, src, bytes); },
              dst, cancelled);
}

HostTier::Source HostTier::copy(ExpertKey key, const Write& write, std::byte* host_dst, const std::atomic<bool>* cancelled) {
  std::lock_guard lock(mutex_);
  auto it = held_.find(key);
  const uint64_t total = backing_.layout().bytes;
  Source source = Source::kHost;
  if (it == held_.end()) {
    source = Source::kBacking;
    if (!load(key, /*pinned=*/false)) {
      if (host_dst) {
        backing_.read(key, host_dst);
      } else {
        staging_.resize(total);
        backing_.read(key, staging_.data());
        write(0, staging_.data(), total);
      }
      return source;
    }
    it = held_.find(key);
  } else if (!it->second.pinned) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  for (uint64_t at = 0; at < total; at += kChunkBytes) {
    if (cancelled && cancelled->load()) return Source::kCancelled;
    write(at, it->second.block.data + at, std::min(kChunkBytes, total - at));
  }
  return source;
}

}  // namespace moe::offload
