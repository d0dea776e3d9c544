#pragma once
// The store layout of a model the engine knows: its layers, which are sparse, and the Hugging
// Face names of each expert's matrices (`moe pack` and the tests pack with it).
#include "offload/store/store_writer.h"
#include "runtime/loading/model_config.h"

namespace moe::offload {

StoreLayout store_layout_for(const loading::ModelConfig& config);

}  // namespace moe::offload
