#include "offload/cache/lru_policy.h"

namespace moe::offload {

void LruPolicy::touch(ExpertKey key) {
  const auto it = where_.find(key);
  if (it != where_.end()) {
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  order_.push_front(key);
  where_.emplace(key, order_.begin());
}

void LruPolicy::on_remove(ExpertKey key) {
  const auto it = where_.find(key);
  if (it == where_.end()) return;
  order_.erase(it->second);
  where_.erase(it);
}

std::optional<ExpertKey> LruPolicy::victim(const std::function<bool(ExpertKey)>& evictable) {
  for (auto it = order_.rbegin(); it != order_.rend(); ++it)
    if (evictable(*it)) return *it;
  return std::nullopt;
}

}  // namespace moe::offload
