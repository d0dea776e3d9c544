#include "runtime/model/store_copies.h"

#include <cmath>

#include "offload/store/store_format.h"
#include "runtime/core/error.h"

namespace moe::model {

std::string store_copy_format(const offload::ExpertStore& store, const WeightFormat& format) {
  for (const std::string& name : store.manifest().formats()) {
    QuantFormat f;
    if (!offload::parse_store_format(name, &f) || f.dtype != format.format.dtype) continue;
    if (!format.group_given || f.group_size == format.format.group_size) return name;
  }
  return "";
}

QuantizedPart use_store_copies(ModelWeights& weights, const loading::ModelConfig& config, const offload::ExpertStore& store,
                               const std::string& store_format) {
  QuantizedPart part{"experts", store_format, "store copies"};
  double rel_sq = 0;
  int64_t blobs = 0;
  for (int l = 0; l < config.num_layers; ++l) {
    // gpt-oss's experts as the store cut them (from its blobs), others' as loaded.
    MoeWeights& moe = weights.layers[size_t(l)].moe;
    auto& experts = moe.experts.empty() ? moe.gpt_oss.cut : moe.experts;
    for (size_t e = 0; e < experts.size(); ++e) {
      GatedMlp& x = experts[e];
      Linear* const gated_order[3] = {&x.gate, &x.up, &x.down};
      Linear* const* mats = x.gated() ? gated_order : gated_order + 1;  // the GeLU form: up, down (its f32 bias stays)
      const int count = x.gated() ? 3 : 2;
      const store::ExpertBlob* blob = store.blob({l, int(e)}, store_format);
      MOE_CHECK(blob != nullptr && blob->matrices_size() == count, ErrorCode::kCorrupt, "{} has no {} copy of expert ({}, {})",
                store.path().string(), store_format, l, e);
      part.bytes_before += x.nbytes();
      for (int i = 0; i < count; ++i) {
        const offload::ExpertStore::StoredMatrix m = store.matrix(*blob, i);
        MOE_CHECK(m.data.shape() == mats[i]->weight.shape(), ErrorCode::kCorrupt,
                  "{}: the {} copy of expert ({}, {}) has another shape than its {} matrices", store.path().string(),
                  store_format, l, e, dtype_name(mats[i]->weight.dtype()));
        mats[i]->weight = m.data;
        mats[i]->scales = m.scales;
        mats[i]->block_scales = Tensor();  // an FP8 matrix's, replaced by the copy's group scales
        mats[i]->block_rows = mats[i]->block_cols = 0;
        mats[i]->exponents = Tensor();  // an MXFP4 matrix's
      }
      part.bytes_after += x.nbytes();
      part.matrices += count;
      ++blobs;
      rel_sq += blob->rms_rel_error() * blob->rms_rel_error();
      part.max_rel_error = std::max(part.max_rel_error, blob->max_rel_error());
    }
  }
  part.rms_rel_error = blobs > 0 ? std::sqrt(rel_sq / double(blobs)) : 0.0;
  return part;
}

}  // namespace moe::model
