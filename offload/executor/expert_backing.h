#pragma once
// The bottom tier: where an expert's bytes are when no cache holds them. For an expert store
// holding blobs in the experts' format (its native one, or the int8/int4 copies a run took with
// --weights) they are read from NVMe through the store's reader (io_uring, O_DIRECT, checksums);
// otherwise they are copied out of the model's tensors (a folder's memory-mapped safetensors in
// the page cache, or the buffers --weights converted at load). gpt-oss's fused experts are cut
// into one GatedMlp of the clamped form each (model::gpt_oss_expert: views, MXFP4 kept) and copied
// out of the model's tensors, or read as a store's blobs (MXFP4 as released, bf16 transposed).
// Thread-safe: copy threads read concurrently.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "offload/store/expert_reader.h"

#include "offload/cache/expert_key.h"
#include "offload/executor/expert_layout.h"
#include "runtime/model/weights.h"

namespace moe::offload {

class ExpertBacking {
 public:
  // `weights` must outlive the backing; every routed expert must share one layout.
  explicit ExpertBacking(const model::ModelWeights& weights, std::shared_ptr<const ExpertStore> store = {});
  const ExpertLayout& layout() const { return layout_; }
  // Writes the expert's layout().bytes into dst; `capacity` (>= layout().bytes) lets a store
  // read land in place when dst is 4 KiB aligned and long enough for O_DIRECT.
  void read(ExpertKey key, std::byte* dst, uint64_t capacity = 0) const;
  // Once a copy of the expert is kept in the engine's memory (host pool, pinned on a device):
  // drops the process's mapping of its bytes in a memory-mapped checkpoint, so they are not
  // held twice (nothing for store reads, which bypass the page cache, or weights in anonymous
  // memory). Returns the bytes released.
  uint64_t release_mapped(ExpertKey key) const;
  bool from_store() const { return !format_.empty(); }
  // The experts' format as the store names it: "bf16", "int8:g32".
  std::string format() const { return layout_.format(); }

  // The store's most compact quantised copy ("int4:g128", "int8:g64", ...), when it has one.
  const std::string& low_precision_format() const { return low_format_; }
  // Reads that copy into `buffer` (resized and aligned as needed) and views it as matrices.
  model::GatedMlpMatrices read_low_precision(ExpertKey key, std::vector<std::byte>& buffer) const;
  const model::GatedMlp& expert(ExpertKey key) const;
  uint64_t bytes_read() const { return bytes_read_.load(); }

 private:
  const model::ModelWeights& weights_;
  std::vector<std::vector<model::GatedMlp>> gpt_oss_;  // [layer][expert]: gpt-oss's experts cut from the fused tensors
  ExpertLayout layout_;
  std::shared_ptr<const ExpertStore> store_;
  std::string format_;  // the store's blobs read(): the experts' format; empty when they are not in the store
  std::string low_format_;
  mutable std::mutex reader_mutex_;
  std::unique_ptr<ExpertReader> reader_;
  std::vector<std::byte> staging_;  // for reads whose destination cannot take O_DIRECT
  std::byte* aligned_staging_ = nullptr;
  mutable std::atomic<uint64_t> bytes_read_{0};
};

}  // namespace moe::offload
