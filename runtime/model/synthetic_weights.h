#pragma once
// Deterministic random weights for any config: every tensor is generated from its name and a
// seed when the loader asks for it, so a model of any shape (up to Mixtral-8x7B for benchmarks)
// can run without a checkpoint, and the same seed always gives the same bits.
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "runtime/loading/model_config.h"
#include "runtime/loading/weight_source.h"

namespace moe::model {

class SyntheticWeights final : public loading::WeightSource {
 public:
  // shared_expert_bytes: every routed expert's tensor of a kind (w1, up_proj, ...) is one buffer
  // for all layers and experts, so a Mixtral-8x7B shape fits in a few GB of host memory for
  // speed benchmarks: the experts stay distinct to the caches and every copy and kernel moves
  // the same bytes, only the logits lose meaning (benchmarks replay the routing anyway).
  // An FP8 config (loading::Fp8Config) gets FP8 decoder Linears with their block scales, as
  // DeepSeek-V3's release has them (routers, norms, embeddings and the LM head as the dtype); a
  // gpt-oss config with MXFP4 experts (its release's quantization_config) gets them in MXFP4.
  SyntheticWeights(const loading::ModelConfig& config, uint64_t seed, bool shared_expert_bytes = false);

  bool has(std::string_view name) const override;
  Tensor tensor(std::string_view name) const override;  // throws: the shape is needed
  Tensor tensor(std::string_view name, const Shape& shape) const override;
  std::string describe() const override;

 private:
  Tensor generate(std::string_view name, const Shape& shape) const;
  bool fp8_weight(std::string_view name, const Shape& shape) const;
  DType dtype_;
  loading::Fp8Config fp8_;
  bool mxfp4_ = false;  // gpt-oss as released: MXFP4 experts (u8 blocks and e8m0 scales)
  uint64_t seed_;
  bool tied_;
  bool shared_expert_bytes_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, Tensor> shared_;  // by name with its indices masked
};

}  // namespace moe::model
