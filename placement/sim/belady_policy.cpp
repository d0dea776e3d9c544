#include "placement/sim/belady_policy.h"

#include <algorithm>

namespace moe::placement {

FutureUses::FutureUses(const std::vector<offload::ExpertKey>& accesses) {
  for (size_t i = 0; i < accesses.size(); ++i) positions_[accesses[i]].push_back(int64_t(i));
}

int64_t FutureUses::next_use(offload::ExpertKey key, int64_t now) const {
  const auto it = positions_.find(key);
  if (it == positions_.end()) return kNever;
  const auto at = std::upper_bound(it->second.begin(), it->second.end(), now);
  return at == it->second.end() ? kNever : *at;
}

std::optional<offload::ExpertKey> BeladyPolicy::victim(const std::function<bool(offload::ExpertKey)>& evictable) {
  std::optional<offload::ExpertKey> best;
  int64_t farthest = -1;
  for (const offload::ExpertKey key : members_) {
    if (!evictable(key)) continue;
    const int64_t next = future_->next_use(key, *now_);
    // Ties (several never used again) go to the smallest key, so runs are reproducible.
    if (next > farthest || (next == farthest && best && key < *best)) farthest = next, best = key;
  }
  return best;
}

bool BeladyPolicy::should_bypass(offload::ExpertKey incoming, const std::function<bool(offload::ExpertKey)>& evictable) const {
  const int64_t incoming_next = future_->next_use(incoming, *now_);
  for (const offload::ExpertKey key : members_)
    if (evictable(key) && future_->next_use(key, *now_) > incoming_next) return false;
  return true;
}

}  // namespace moe::placement
