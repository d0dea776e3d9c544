#pragma once
// Whether a missed expert may take a cache slot from the one the eviction policy would give up
// (TinyLFU's admission, Einziger et al. 2017). With fewer slots than the experts a step uses,
// LRU alone evicts every expert before its next use and hits nothing while copying each expert
// in again; admitting a newcomer only when it has been used more often than its victim keeps
// a stable set of frequent experts resident and streams the rest through without caching
// them, which is what Belady's bypass does knowing the future.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "offload/cache/expert_key.h"

namespace moe::offload {

class AdmissionFilter {
 public:
  virtual ~AdmissionFilter() = default;
  virtual void record(ExpertKey key) = 0;  // one use of the expert (hit or miss)
  virtual bool admit(ExpertKey candidate, ExpertKey victim) const = 0;
  virtual std::string name() const = 0;
};

// Use counts with aging: every `window` recorded uses all counts halve, so the filter follows
// routing that drifts. A candidate is admitted only when strictly more frequent than the
// victim (ties keep the resident expert: that is what stops the cycling).
class FrequencyAdmission final : public AdmissionFilter {
 public:
  explicit FrequencyAdmission(uint64_t window);
  void record(ExpertKey key) override;
  bool admit(ExpertKey candidate, ExpertKey victim) const override;
  std::string name() const override { return "frequency"; }
  uint32_t count(ExpertKey key) const;

 private:
  uint64_t window_;
  uint64_t since_halving_ = 0;
  std::unordered_map<ExpertKey, uint32_t, ExpertKeyHash> counts_;
};

// "all" (no filter: every miss is cached, the classic policies) or "frequency"; `experts` is
// how many experts the cache may see (the aging window is ten uses of each). Throws
// moe::Error(kInvalidArgument) for other names.
std::unique_ptr<AdmissionFilter> make_admission(const std::string& name, uint64_t experts);

}  // namespace moe::offload
