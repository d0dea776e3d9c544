#include "offload/cache/admission_filter.h"

#include <algorithm>

#include "runtime/core/error.h"

namespace moe::offload {

FrequencyAdmission::FrequencyAdmission(uint64_t window) : window_(std::max<uint64_t>(window, 1)) {}

void FrequencyAdmission::record(ExpertKey key) {
  ++counts_[key];
  if (++since_halving_ < window_) return;
  since_halving_ = 0;
  for (auto it = counts_.begin(); it != counts_.end();) {
    it->second /= 2;
    it = it->second == 0 ? counts_.erase(it) : std::next(it);
  }
}

bool FrequencyAdmission::admit(ExpertKey candidate, ExpertKey victim) const { return count(candidate) > count(victim); }

uint32_t FrequencyAdmission::count(ExpertKey key) const {
  const auto it = counts_.find(key);
  return it == counts_.end() ? 0 : it->second;
}

std::unique_ptr<AdmissionFilter> make_admission(const std::string& name, uint64_t experts) {
  if (name == "all") return nullptr;
  if (name == "frequency") return std::make_unique<FrequencyAdmission>(10 * std::max<uint64_t>(experts, 1));
  fail(ErrorCode::kInvalidArgument, "cache admission '{}' is unknown (frequency or all)", name);
}

}  // namespace moe::offload
