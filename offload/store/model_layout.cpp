#include "offload/store/model_layout.h"

#include "runtime/model/weights.h"

namespace moe::offload {

StoreLayout store_layout_for(const loading::ModelConfig& config) {
  StoreLayout layout;
  layout.num_layers = config.num_layers;
  layout.num_experts = config.num_experts;
  layout.sparse = config.sparse_layers;
  layout.expert_names = [config](int layer, int expert) {
    const model::ExpertTensorNames n = model::expert_tensor_names(config, layer, expert);
    return std::array<std::string, 3>{n.gate, n.up, n.down};
  };
  return layout;
}

}  // namespace moe::offload
