#pragma once
// An opened expert store: its manifest, the embedded files, the resident tensors (viewed through
// mmap), and where each (layer, expert, format) blob lies, for the reader.
#include <atomic>
#include <filesystem>
#include <functional>
#include <span>
#include <vector>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "offload/proto/store.pb.h"
#include "offload/cache/expert_key.h"
#include "runtime/core/mapped_file.h"
#include "runtime/core/tensor.h"
#include "runtime/loading/weight_source.h"

namespace moe::offload {

class ExpertStore {
 public:
  // Throws moe::Error (kNotFound, kCorrupt) naming the file.
  static std::shared_ptr<const ExpertStore> open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const store::StoreManifest& manifest() const { return manifest_; }
  uint64_t file_size() const { return file_->bytes().size(); }

  // An embedded file (config.json, tokenizer.json, ...), or nullopt.
  std::optional<std::string> file(std::string_view name) const;
  // Writes the embedded files to `dir` (created), so folder-based loaders can read them.
  void extract_files(const std::filesystem::path& dir) const;

  // The blob of an expert in a format ("bf16", "int4:g128"); null when absent.
  const store::ExpertBlob* blob(ExpertKey key, std::string_view format) const;
  // Its bytes through the mapping (no checksum check: the reader checks).
  std::span<const std::byte> mapped(const store::ExpertBlob& blob) const;

  // Matrix `index` (gate, up, down) of a blob viewed through the mapping: int8/int4 data with
  // its f32 scales [rows, cols / group], FP8 with its f32 block scales [ceil(rows / R),
  // ceil(cols / C)] (format "fp8:RxC"), MXFP4 with its u8 exponents [rows, cols / 32], or the
  // native dtype without scales. Throws
  // moe::Error(kCorrupt) when the manifest's sizes do not match the format.
  struct StoredMatrix {
    Tensor data, scales;
  };
  StoredMatrix matrix(const store::ExpertBlob& blob, int index) const;

  bool has_tensor(std::string_view name) const;
  // Resident tensors and the matrices (and f32 biases) of native-format experts, viewing the mapping. Their bytes
  // are checked against the manifest's checksum on first use (an expert's whole blob, once),
  // whatever path reads them: moe::Error(kCorrupt) naming the piece when they do not match.
  Tensor tensor(std::string_view name) const;

  // What verify() found: pieces checked, those without a recorded checksum, and the bad ones.
  struct Verification {
    int64_t checked = 0, unrecorded = 0;
    uint64_t bytes = 0;
    std::vector<std::string> corrupt;  // "tensor 'x'", "expert (3, 5) int4:g32", "file 'config.json'"
  };
  // Reads and checks every embedded file, resident tensor and expert blob of every format;
  // `progress` gets the bytes checked so far.
  Verification verify(const std::function<void(uint64_t done, uint64_t total)>& progress = {}) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> file_;
  store::StoreManifest manifest_;
  std::map<std::string, int, std::less<>> resident_;  // name -> index in manifest.resident
  struct Piece {
    int blob;
    int matrix;
    enum Kind { kData, kScales, kBias } kind = kData;  // kScales: an FP8 matrix's block scales (its weight_scale_inv)
  };
  std::map<std::string, Piece, std::less<>> expert_tensors_;  // native format only
  std::map<std::pair<ExpertKey, std::string>, int> blobs_;
  // Pieces already checked on first use (resident tensors, then blobs, then files).
  std::unique_ptr<std::atomic<bool>[]> checked_;
  void check_once(size_t slot, std::span<const std::byte> bytes, uint64_t want, const std::string& what) const;
};

// The store as the model loader's weight source.
class StoreWeightSource final : public loading::WeightSource {
 public:
  explicit StoreWeightSource(std::shared_ptr<const ExpertStore> store) : store_(std::move(store)) {}
  bool has(std::string_view name) const override { return store_->has_tensor(name); }
  Tensor tensor(std::string_view name) const override { return store_->tensor(name); }
  std::string describe() const override { return store_->path().string(); }
  const std::shared_ptr<const ExpertStore>& store() const { return store_; }

 private:
  std::shared_ptr<const ExpertStore> store_;
};

}  // namespace moe::offload
