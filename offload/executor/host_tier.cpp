#include "offload/executor/host_tier.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

namespace moe::offload {

HostTier::HostTier(const ExpertBacking& backing, uint64_t budget, uint64_t chunk_bytes)
    : backing_(backing), chunk_bytes_(std::max<uint64_t>(chunk_bytes, 64)) {
  if (budget >= backing.layout().bytes) {
    pool_ = std::make_unique<HostPool>(budget, /*try_pinned=*/true);
    // Fault plain memory's pages in now, not during the first tokens (pinned memory is resident
    // already: writing it again was a pass over the whole pool, 86 GiB for a Mixtral-8x7B run).
    const auto [base, bytes] = pool_->arena();
    if (!pool_->pinned()) std::memset(base, 0, bytes);
  }
}

std::optional<HostBlock> HostTier::allocate_evicting() {
  auto block = pool_->allocate(backing_.layout().bytes);
  // Make room from the unpinned copies, least recently used first, skipping those in use.
  for (auto victim = lru_.end(); !block && victim != lru_.begin();) {
    --victim;
    const auto it = held_.find(*victim);
    if (it->second.users > 0 || it->second.loading) continue;
    pool_->free(it->second.block);
    held_.erase(it);
    victim = lru_.erase(victim);
    block = pool_->allocate(backing_.layout().bytes);
  }
  return block;
}

// Startup (the plan's host-homed experts): reads with the lock held, evicting nothing.
bool HostTier::pin(ExpertKey key) {
  std::lock_guard lock(mutex_);
  const auto it = held_.find(key);
  if (it != held_.end()) {
    if (!it->second.pinned) {  // held as a cached copy: it stays from now on
      lru_.erase(it->second.lru);
      it->second.pinned = true;
    }
    return true;
  }
  const auto block = pool_ ? pool_->allocate(backing_.layout().bytes) : std::nullopt;
  if (!block) return false;
  backing_.read(key, block->data, block->bytes);
  backing_.release_mapped(key);  // kept here now: not in the mapping as well
  Held& h = held_[key];
  h.block = *block;
  h.pinned = true;
  return true;
}

HostTier::Source HostTier::copy_out(ExpertKey key, const Write& write, const std::atomic<bool>* cancelled) {
  return copy(key, write, nullptr, cancelled);
}

HostTier::Source HostTier::copy_out(ExpertKey key, std::byte* dst, const std::atomic<bool>* cancelled) {
  return copy(key, [dst](uint64_t offset, const std::byte* src, uint64_t bytes) { std::memcpy(dst + offset, src, bytes); },
              dst, cancelled);
}

HostTier::Held* HostTier::hold(ExpertKey key, Source& source) {
  std::unique_lock lock(mutex_);
  auto it = held_.find(key);
  while (it != held_.end() && it->second.loading) {  // another thread is reading it in
    loaded_.wait(lock);
    it = held_.find(key);
  }
  if (it != held_.end()) {
    source = Source::kHost;
    Held* held = &it->second;  // element references survive rehashing
    if (!held->pinned) lru_.splice(lru_.begin(), lru_, held->lru);
    ++held->users;
    return held;
  }
  source = Source::kBacking;
  const auto block = pool_ ? allocate_evicting() : std::nullopt;
  if (!block) return nullptr;
  Held* held = &held_[key];
  held->block = *block;
  held->lru = lru_.insert(lru_.begin(), key);
  held->loading = true;
  held->users = 1;
  lock.unlock();
  try {
    backing_.read(key, held->block.data, held->block.bytes);
    backing_.release_mapped(key);
  } catch (...) {
    lock.lock();
    lru_.erase(held->lru);
    pool_->free(held->block);
    held_.erase(key);
    loaded_.notify_all();
    throw;
  }
  lock.lock();
  held->loading = false;
  loaded_.notify_all();
  return held;
}

void HostTier::release(Held* held) {
  std::lock_guard lock(mutex_);
  --held->users;
}

HostTier::Source HostTier::copy(ExpertKey key, const Write& write, std::byte* host_dst, const std::atomic<bool>* cancelled) {
  const uint64_t total = backing_.layout().bytes;
  Source source = Source::kHost;
  Held* held = hold(key, source);
  if (!held) {  // no room: straight from the backing, keeping nothing
    if (host_dst) {
      backing_.read(key, host_dst);
    } else {
      thread_local std::vector<std::byte> staging;
      staging.resize(total);
      backing_.read(key, staging.data());
      write(0, staging.data(), total);
    }
    if (release_after_read_) backing_.release_mapped(key);
    return source;
  }
  try {
    for (uint64_t at = 0; at < total; at += chunk_bytes_) {
      if (cancelled && cancelled->load()) {
        release(held);
        return Source::kCancelled;
      }
      write(at, held->block.data + at, std::min(chunk_bytes_, total - at));
    }
  } catch (...) {
    release(held);
    throw;
  }
  release(held);
  return source;
}

HostTier::Lease HostTier::borrow(ExpertKey key, Source* source) {
  Source from = Source::kHost;
  Held* held = hold(key, from);
  if (source) *source = from;
  return held ? Lease(this, held) : Lease();
}

HostTier::Lease& HostTier::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    reset();
    tier_ = std::exchange(other.tier_, nullptr);
    held_ = std::exchange(other.held_, nullptr);
  }
  return *this;
}

void HostTier::Lease::reset() {
  if (held_) tier_->release(held_);
  tier_ = nullptr;
  held_ = nullptr;
}

const std::byte* HostTier::Lease::data() const { return held_ ? held_->block.data : nullptr; }

}  // namespace moe::offload
