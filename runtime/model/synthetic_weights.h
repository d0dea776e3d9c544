#pragma once
// Deterministic random weights for any config: every tensor is generated from its name and a
// seed when the loader asks for it, so a model of any shape (up to Mixtral-8x7B for benchmarks)
// can run without a checkpoint, and the same seed always gives the same bits.
#include <cstdint>
#include <string>

#include "runtime/loading/model_config.h"
#include "runtime/loading/weight_source.h"

namespace moe::model {

class SyntheticWeights final : public loading::WeightSource {
 public:
  SyntheticWeights(const loading::ModelConfig& config, uint64_t seed);

  bool has(std::string_view name) const override;
  Tensor tensor(std::string_view name) const override;  // throws: the shape is needed
  Tensor tensor(std::string_view name, const Shape& shape) const override;
  std::string describe() const override;

 private:
  DType dtype_;
  uint64_t seed_;
  bool tied_;
};

}  // namespace moe::model
