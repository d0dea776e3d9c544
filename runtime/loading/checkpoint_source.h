#pragma once
// A Hugging Face checkpoint folder as a WeightSource.
#include "runtime/loading/safetensors.h"
#include "runtime/loading/weight_source.h"

namespace moe::loading {

class CheckpointSource final : public WeightSource {
 public:
  explicit CheckpointSource(Checkpoint checkpoint) : checkpoint_(std::move(checkpoint)) {}
  bool has(std::string_view name) const override { return checkpoint_.has(name); }
  Tensor tensor(std::string_view name) const override { return checkpoint_.tensor(name); }
  std::string describe() const override { return checkpoint_.dir().string(); }
  const Checkpoint& checkpoint() const { return checkpoint_; }

 private:
  Checkpoint checkpoint_;
};

}  // namespace moe::loading
