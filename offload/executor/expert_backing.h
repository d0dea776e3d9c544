#pragma once
// The bottom tier: where an expert's bytes are when no cache holds them. For a model folder or
// an expert store these are the memory-mapped weights; reading one copies it out of the file
// (through the page cache). Thread-safe: copy threads read concurrently.
#include <atomic>
#include <string>
#include <vector>

#include "offload/cache/expert_key.h"
#include "offload/executor/expert_layout.h"
#include "runtime/model/weights.h"

namespace moe::offload {

class ExpertBacking {
 public:
  // `weights` must outlive the backing; every routed expert must share one layout.
  explicit ExpertBacking(const model::ModelWeights& weights);
  const ExpertLayout& layout() const { return layout_; }
  void read(ExpertKey key, std::byte* dst) const;
  const model::GatedMlp& expert(ExpertKey key) const;
  uint64_t bytes_read() const { return bytes_read_.load(); }

 private:
  const model::ModelWeights& weights_;
  ExpertLayout layout_;
  mutable std::atomic<uint64_t> bytes_read_{0};
};

}  // namespace moe::offload
