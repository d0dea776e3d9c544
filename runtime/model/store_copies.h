#pragma once
// Routed experts taken from an expert store's int8/int4 copies (`moe pack --formats`) instead of
// converted at load: the matrices view the store's mapping, so a resident run pages in only the
// smaller bytes, and the offloading executor reads the same blobs into every tier.
#include <string>

#include "offload/store/expert_store.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/quantize_weights.h"

namespace moe::model {

// The store's format for `format`'s experts: "int8:g64" for int8:64, and for int8 without a group
// the store's first int8 format; "" when it has none.
std::string store_copy_format(const offload::ExpertStore& store, const WeightFormat& format);

// Points every routed expert's matrices at the store's `store_format` blobs. The error is the
// one the packer measured: the largest of the blobs' and the RMS of their relative RMS errors.
QuantizedPart use_store_copies(ModelWeights& weights, const loading::ModelConfig& config, const offload::ExpertStore& store,
                               const std::string& store_format);

}  // namespace moe::model
