#include "offload/store/model_layout.h"

#include <cctype>
#include <string_view>

#include "runtime/model/weights.h"

namespace moe::offload {

StoreLayout store_layout_for(const loading::ModelConfig& config) {
  StoreLayout layout;
  layout.num_layers = config.num_layers;
  layout.num_experts = config.num_experts;
  layout.sparse = config.sparse_layers;
  layout.expert_names = [config](int layer, int expert) { return model::expert_tensor_names(config, layer, expert); };
  // Layers past num_hidden_layers (DeepSeek-V3's MTP layers, num_nextn_predict_layers) are never
  // loaded: the engine, like transformers, runs the base model only.
  layout.unused = [layers = config.num_layers](const std::string& name) {
    constexpr std::string_view kPrefix = "model.layers.";
    if (name.compare(0, kPrefix.size(), kPrefix) != 0) return false;
    int layer = 0;
    size_t i = kPrefix.size();
    if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return false;
    for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && layer < (1 << 20); ++i)
      layer = layer * 10 + (name[i] - '0');
    return layer >= layers;
  };
  layout.fp8_block_rows = config.fp8.block_rows;
  layout.fp8_block_cols = config.fp8.block_cols;
  return layout;
}

}  // namespace moe::offload
