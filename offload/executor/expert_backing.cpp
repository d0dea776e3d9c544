#include "offload/executor/expert_backing.h"

#include <algorithm>
#include <cstring>

#include "offload/store/store_format.h"
#include "runtime/core/mapped_file.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

// A 4 KiB-aligned region of at least `bytes` inside `buffer` (resized as needed), as O_DIRECT reads want.
std::byte* aligned_region(std::vector<std::byte>& buffer, uint64_t bytes) {
  buffer.resize(bytes + 4096);
  return reinterpret_cast<std::byte*>((reinterpret_cast<uintptr_t>(buffer.data()) + 4095) / 4096 * 4096);
}

}  // namespace

ExpertBacking::ExpertBacking(const model::ModelWeights& weights, std::shared_ptr<const ExpertStore> store)
    : weights_(weights), store_(std::move(store)) {
  bool first = true;
  for (const auto& layer : weights.layers) {
    const model::GptOssExpertWeights& fused = layer.moe.gpt_oss;
    gpt_oss_.emplace_back();
    for (int64_t e = 0; fused.defined() && e < fused.experts(); ++e) gpt_oss_.back().push_back(model::gpt_oss_expert(fused, e));
  }
  for (size_t l = 0; l < weights.layers.size(); ++l)
    for (const auto& e : gpt_oss_[l].empty() ? weights.layers[l].moe.experts : gpt_oss_[l]) {
      const ExpertLayout of = ExpertLayout::of(e);
      MOE_CHECK(first || of == layout_, ErrorCode::kUnsupported, "routed experts of different shapes or dtypes cannot be offloaded");
      layout_ = of;
      first = false;
    }
  MOE_CHECK(!first, ErrorCode::kInvalidArgument, "the model has no routed experts to offload");
  // A store lists no expert format when it keeps the experts among its resident tensors (gpt-oss's
  // bf16 ones, packed before they became blobs): they are then copied out of the model's tensors.
  if (store_ && store_->manifest().formats_size() > 0) {
    for (const std::string& f : store_->manifest().formats()) {
      if (f == layout_.format()) format_ = f;
      if (f.rfind("int4:", 0) == 0 || (f.rfind("int8:", 0) == 0 && low_format_.rfind("int4:", 0) != 0)) low_format_ = f;  // int4 first: the fewest bytes
    }
    // Reads land in slots as they are, so every blob must hold its matrices at the layout's offsets.
    for (int l = 0; l < int(weights.layers.size()) && !format_.empty(); ++l)
      for (int e = 0; e < int(std::max(weights.layers[size_t(l)].moe.experts.size(), gpt_oss_[size_t(l)].size())); ++e) {
        const store::ExpertBlob* blob = store_->blob({l, e}, format_);
        const std::vector<ExpertLayout::Matrix> pieces = layout_.matrices();
        MOE_CHECK(blob != nullptr && blob->matrices_size() == int(pieces.size()), ErrorCode::kCorrupt,
                  "{} has no {} blob of {} matrices for expert ({}, {})", store_->path().string(), format_, pieces.size(), l, e);
        for (size_t i = 0; i < pieces.size(); ++i) {
          const store::MatrixPiece& p = blob->matrices(int(i));
          const MatrixPlacement &data = *pieces[i].data, &scales = *pieces[i].scales;
          const MatrixPlacement none, &bias = pieces[i].data == &layout_.up     ? layout_.up_bias
                                              : pieces[i].data == &layout_.down ? layout_.down_bias
                                                                                : none;
          MOE_CHECK(p.data_offset() == data.offset && p.data_bytes() == data.bytes &&
                        (scales.bytes == 0 || (p.scales_offset() == scales.offset && p.scales_bytes() == scales.bytes)) &&
                        p.bias_bytes() == bias.bytes && (bias.bytes == 0 || p.bias_offset() == bias.offset),
                    ErrorCode::kCorrupt, "{}: the {} blob of expert ({}, {}) does not hold its matrices where a slot does",
                    store_->path().string(), format_, l, e);
        }
      }
    reader_ = std::make_unique<ExpertReader>(store_, ReaderOptions{.queue_depth = 4});
    aligned_staging_ = aligned_region(staging_, (layout_.bytes + 2 * 4096) / 4096 * 4096);
  }
}

const model::GatedMlp& ExpertBacking::expert(ExpertKey key) const {
  const auto& experts = gpt_oss_.at(size_t(key.layer)).empty() ? weights_.layers.at(size_t(key.layer)).moe.experts : gpt_oss_[size_t(key.layer)];
  MOE_CHECK(key.expert >= 0 && size_t(key.expert) < experts.size(), ErrorCode::kInternal, "no expert ({}, {})", key.layer,
            key.expert);
  return experts[size_t(key.expert)];
}

model::GatedMlpMatrices ExpertBacking::read_low_precision(ExpertKey key, std::vector<std::byte>& buffer) const {
  MOE_CHECK(!low_format_.empty(), ErrorCode::kInternal, "no low-precision copy in the store");
  const store::ExpertBlob* blob = store_->blob(key, low_format_);
  const bool gated = layout_.gate.bytes > 0;
  MOE_CHECK(blob != nullptr && blob->matrices_size() == (gated ? 3 : 2), ErrorCode::kCorrupt,
            "{} has no {} blob of {} matrices for expert ({}, {})", store_->path().string(), low_format_, gated ? 3 : 2, key.layer,
            key.expert);
  const uint64_t needed = ExpertReader::read_bytes(*blob);
  std::byte* at = aligned_region(buffer, needed);
  {
    std::lock_guard lock(reader_mutex_);
    reader_->read(key, low_format_, at);
  }
  bytes_read_ += blob->nbytes();
  QuantFormat format;
  MOE_CHECK(parse_store_format(low_format_, &format), ErrorCode::kCorrupt, "{}: bad format '{}'", store_->path().string(),
            low_format_);
  model::GatedMlpMatrices q;
  cpu::WeightMatrix* const gated_order[3] = {&q.gate, &q.up, &q.down};
  cpu::WeightMatrix* const* m = gated ? gated_order : gated_order + 1;
  for (int i = 0; i < blob->matrices_size(); ++i) {  // decode_manifest checked every piece lies inside the blob
    const store::MatrixPiece& p = blob->matrices(i);
    *m[i] = cpu::WeightMatrix{at + p.data_offset(), format.dtype, p.rows(), p.cols(),
                              reinterpret_cast<const float*>(at + p.scales_offset()), format.group_size};
    if (p.bias_bytes() > 0) (m[i] == &q.down ? q.down_bias : q.up_bias) = reinterpret_cast<const float*>(at + p.bias_offset());
  }
  MOE_CHECK(gated || q.up_bias != nullptr, ErrorCode::kCorrupt, "{}: the {} blob of expert ({}, {}) lacks its up bias",
            store_->path().string(), low_format_, key.layer, key.expert);
  // gpt-oss's clamped form: the copy holds both biases, the layout the SwiGLU's constants.
  MOE_CHECK((q.down_bias != nullptr) == (layout_.down_bias.bytes > 0), ErrorCode::kCorrupt,
            "{}: the {} blob of expert ({}, {}) has a down bias where the experts have none, or lacks theirs",
            store_->path().string(), low_format_, key.layer, key.expert);
  q.swiglu_alpha = layout_.swiglu_alpha;
  q.swiglu_limit = layout_.swiglu_limit;
  return q;
}

void ExpertBacking::read(ExpertKey key, std::byte* dst, uint64_t capacity) const {
  if (format_.empty()) {
    layout_.pack(expert(key), dst);
    bytes_read_ += layout_.bytes;
    return;
  }
  // The blob holds the matrices (and scales) at the layout's offsets (checked at construction:
  // both align each piece to 64 bytes from 0), so its first layout().bytes are what pack() writes.
  const store::ExpertBlob* blob = store_->blob(key, format_);
  MOE_CHECK(blob != nullptr, ErrorCode::kCorrupt, "{} has no {} blob for expert ({}, {})", store_->path().string(),
            format_, key.layer, key.expert);
  const uint64_t needed = ExpertReader::read_bytes(*blob);
  std::lock_guard lock(reader_mutex_);
  if (reinterpret_cast<uintptr_t>(dst) % 4096 == 0 && capacity >= needed) {
    reader_->read(key, format_, dst);
  } else {
    reader_->read(key, format_, aligned_staging_);
    std::memcpy(dst, aligned_staging_, layout_.bytes);
  }
  bytes_read_ += blob->nbytes();
}

uint64_t ExpertBacking::release_mapped(ExpertKey key) const {
  if (from_store()) return 0;
  uint64_t released = 0;
  const model::GatedMlp& e = expert(key);
  for (const model::Linear* l : {&e.gate, &e.up, &e.down})
    for (const Tensor* t : {&l->weight, &l->scales, &l->exponents})
      if (t->defined() && MappedFile::release_pages(t->data<std::byte>(), t->nbytes())) released += t->nbytes();
  return released;
}

}  // namespace moe::offload
