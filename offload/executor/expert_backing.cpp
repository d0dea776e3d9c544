#include "offload/executor/expert_backing.h"

#include <cstring>

#include "runtime/core/error.h"

namespace moe::offload {

ExpertBacking::ExpertBacking(const model::ModelWeights& weights, std::shared_ptr<const ExpertStore> store)
    : weights_(weights), store_(std::move(store)) {
  bool first = true;
  for (const auto& layer : weights.layers)
    for (const auto& e : layer.moe.experts) {
      const ExpertLayout l = ExpertLayout::of(e);
      MOE_CHECK(first || l == layout_, ErrorCode::kUnsupported, "routed experts of different shapes or dtypes cannot be offloaded");
      layout_ = l;
      first = false;
    }
  MOE_CHECK(!first, ErrorCode::kInvalidArgument, "the model has no routed experts to offload");
  if (store_) {
    MOE_CHECK(store_->manifest().formats_size() > 0, ErrorCode::kCorrupt, "{} lists no expert format", store_->path().string());
    native_format_ = store_->manifest().formats(0);
    reader_ = std::make_unique<ExpertReader>(store_, ReaderOptions{.queue_depth = 4});
    // One staging buffer for reads whose destination cannot take O_DIRECT (4 KiB aligned).
    const uint64_t bytes = (layout_.bytes + 2 * 4096) / 4096 * 4096;
    staging_.resize(bytes + 4096);
    aligned_staging_ = reinterpret_cast<std::byte*>((reinterpret_cast<uintptr_t>(staging_.data()) + 4095) / 4096 * 4096);
  }
}

const model::GatedMlp& ExpertBacking::expert(ExpertKey key) const {
  const auto& experts = weights_.layers.at(size_t(key.layer)).moe.experts;
  MOE_CHECK(key.expert >= 0 && size_t(key.expert) < experts.size(), ErrorCode::kInternal, "no expert ({}, {})", key.layer,
            key.expert);
  return experts[size_t(key.expert)];
}

void ExpertBacking::read(ExpertKey key, std::byte* dst, uint64_t capacity) const {
  if (!reader_) {
    layout_.pack(expert(key), dst);
    bytes_read_ += layout_.bytes;
    return;
  }
  // The store's native blob holds the three matrices at the layout's offsets (both align each
  // matrix to 64 bytes from 0), so its first layout().bytes are exactly what pack() writes.
  const store::ExpertBlob* blob = store_->blob(key, native_format_);
  MOE_CHECK(blob != nullptr, ErrorCode::kCorrupt, "{} has no {} blob for expert ({}, {})", store_->path().string(),
            native_format_, key.layer, key.expert);
  const uint64_t needed = ExpertReader::read_bytes(*blob);
  std::lock_guard lock(reader_mutex_);
  if (reinterpret_cast<uintptr_t>(dst) % 4096 == 0 && capacity >= needed) {
    reader_->read(key, native_format_, dst);
  } else {
    reader_->read(key, native_format_, aligned_staging_);
    std::memcpy(dst, aligned_staging_, layout_.bytes);
  }
  bytes_read_ += blob->nbytes();
}

}  // namespace moe::offload
