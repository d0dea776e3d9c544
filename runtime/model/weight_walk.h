#pragma once
// Every matrix (Linear) a model holds, with the part it belongs to, so that converting weights
// (--weights) and counting what a token reads walk one list instead of each family's fields.
#include <functional>

#include "runtime/model/weights.h"

namespace moe::model {

enum class WeightPart {
  kExpert,  // routed experts' gate, up and down
  kDense,   // attention's projections (BAM's attention experts, DS-MoE's c_attn and c_proj too), dense and shared MLPs
  kLmHead,
  kRouter,  // routers, Qwen2-MoE's shared-expert gate, MoE++'s gate map and constant experts' mix
};

// Calls `visit` for each defined matrix, layer by layer, the LM head last.
void for_each_linear(ModelWeights& weights, const std::function<void(Linear&, WeightPart)>& visit);
void for_each_linear(const ModelWeights& weights, const std::function<void(const Linear&, WeightPart)>& visit);

// What a token's matrices weigh as loaded (int8/int4 ones with their scales): every matrix but
// the routed experts (resident), of which the LM head, and one routed expert (from the config
// when an expert store serves them). Norms and the embedding row a token reads are left out.
struct MatrixTotals {
  double resident_bytes = 0, dense_params = 0, lm_head_params = 0;
  double expert_bytes = 0, expert_params = 0;
};
MatrixTotals matrix_totals(const ModelWeights& weights, const loading::ModelConfig& config);

}  // namespace moe::model
