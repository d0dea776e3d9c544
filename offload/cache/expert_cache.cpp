#include "offload/cache/expert_cache.h"

#include "runtime/core/error.h"

namespace moe::offload {

CacheHandle& CacheHandle::operator=(CacheHandle&& other) noexcept {
  if (this != &other) {
    release();
    cache_ = other.cache_;
    key_ = other.key_;
    data_ = other.data_;
    other.cache_ = nullptr;
  }
  return *this;
}

void CacheHandle::release() {
  if (cache_) cache_->unpin(key_);
  cache_ = nullptr;
}

ExpertCache::ExpertCache(std::byte* arena, uint64_t slot_bytes, int slots, std::unique_ptr<EvictionPolicy> policy,
                         std::unique_ptr<AdmissionFilter> admission)
    : arena_(arena),
      slot_bytes_(slot_bytes),
      slots_(size_t(std::max(slots, 0)), false),
      policy_(std::move(policy)),
      admission_(std::move(admission)) {
  MOE_CHECK(slots >= 1 && slot_bytes > 0 && arena != nullptr, ErrorCode::kInvalidArgument,
            "an expert cache needs at least one slot of memory");
  MOE_CHECK(policy_ != nullptr, ErrorCode::kInvalidArgument, "an expert cache needs an eviction policy");
}

std::optional<CacheHandle> ExpertCache::acquire(ExpertKey key) {
  std::lock_guard lock(mutex_);
  if (admission_) admission_->record(key);
  const auto it = entries_.find(key);
  if (it == entries_.end() || it->second.state != State::kResident) {
    ++counters_.misses;
    return std::nullopt;
  }
  ++counters_.hits;
  ++it->second.pins;
  policy_->on_access(key);
  return CacheHandle(this, key, arena_ + uint64_t(it->second.slot) * slot_bytes_);
}

std::byte* ExpertCache::reserve(ExpertKey key, bool high_precision) {
  std::lock_guard lock(mutex_);
  if (const auto it = entries_.find(key); it != entries_.end() && it->second.state != State::kAbsent) return nullptr;
  int slot = -1;
  for (size_t i = 0; i < slots_.size(); ++i)
    if (!slots_[i]) {
      slot = int(i);
      break;
    }
  if (slot < 0) {
    const auto victim = policy_->victim([&](ExpertKey k) {
      const auto it = entries_.find(k);
      return it != entries_.end() && it->second.state == State::kResident && it->second.pins == 0;
    });
    if (!victim) return nullptr;  // every slot is pinned or filling
    if (admission_ && !admission_->admit(key, *victim)) {
      ++counters_.not_admitted;
      return nullptr;
    }
    Entry& v = entries_.at(*victim);
    slot = v.slot;
    entries_.erase(*victim);
    policy_->on_remove(*victim);
    ++counters_.evictions;
  }
  slots_[size_t(slot)] = true;
  entries_[key] = Entry{slot, State::kFilling, 1};
  policy_->on_insert(key, high_precision);
  return arena_ + uint64_t(slot) * slot_bytes_;
}

void ExpertCache::publish(ExpertKey key, uint64_t bytes) {
  {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(key);
    MOE_CHECK(it != entries_.end() && it->second.state == State::kFilling, ErrorCode::kInternal,
              "publish of expert ({}, {}) that is not being filled", key.layer, key.expert);
    MOE_CHECK(bytes <= slot_bytes_, ErrorCode::kInternal, "expert of {} bytes overflows a {}-byte slot", bytes, slot_bytes_);
    it->second.state = State::kResident;
    --it->second.pins;  // the filler's pin
    ++counters_.fills;
    counters_.bytes_filled += bytes;
  }
  changed_.notify_all();
}

void ExpertCache::abandon(ExpertKey key) {
  {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(key);
    MOE_CHECK(it != entries_.end() && it->second.state == State::kFilling, ErrorCode::kInternal,
              "abandon of expert ({}, {}) that is not being filled", key.layer, key.expert);
    slots_[size_t(it->second.slot)] = false;
    entries_.erase(it);
    policy_->on_remove(key);
    ++counters_.abandoned;
  }
  changed_.notify_all();
}

std::optional<CacheHandle> ExpertCache::wait(ExpertKey key) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] {
    const auto it = entries_.find(key);
    return it == entries_.end() || it->second.state != State::kFilling;
  });
  const auto it = entries_.find(key);
  if (it == entries_.end() || it->second.state != State::kResident) return std::nullopt;
  ++it->second.pins;
  policy_->on_access(key);
  return CacheHandle(this, key, arena_ + uint64_t(it->second.slot) * slot_bytes_);
}

void ExpertCache::unpin(ExpertKey key) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it != entries_.end() && it->second.pins > 0) --it->second.pins;
}

ExpertCache::State ExpertCache::state(ExpertKey key) const {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  return it == entries_.end() ? State::kAbsent : it->second.state;
}

void ExpertCache::set_current_layer(int layer) {
  std::lock_guard lock(mutex_);
  policy_->set_current_layer(layer);
}

CacheCounters ExpertCache::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

int ExpertCache::resident_count() const {
  std::lock_guard lock(mutex_);
  int n = 0;
  for (const auto& [key, e] : entries_) n += e.state == State::kResident;
  return n;
}

std::string ExpertCache::policy_name() const {
  return admission_ ? policy_->name() + "+" + admission_->name() : policy_->name();
}

}  // namespace moe::offload
