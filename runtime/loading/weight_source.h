#pragma once
// Where a model's tensors come from: a Hugging Face checkpoint folder, or an expert store
// packed from one. The model loader asks for tensors by their Hugging Face names.
#include <string>
#include <string_view>

#include "runtime/core/tensor.h"  // Tensor, Shape

namespace moe::loading {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(std::string_view name) const = 0;
  // Throws moe::Error(kNotFound) naming the tensor and the source.
  virtual Tensor tensor(std::string_view name) const = 0;
  // The loader knows the shape it expects; generated sources (synthetic weights) need it.
  virtual Tensor tensor(std::string_view name, const Shape& /*expected*/) const { return tensor(name); }
  virtual std::string describe() const = 0;
};

}  // namespace moe::loading
