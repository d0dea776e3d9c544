#pragma once
// Safetensors files, read in place through mmap and validated as strictly as the safetensors
// project itself: header at most 100 MB and starting with '{', no duplicate names, offsets
// contiguous from 0, inside the file and equal to dtype x shape (overflow-checked), no
// trailing bytes. Every violation is a moe::Error(kCorrupt) naming the file.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/mapped_file.h"
#include "runtime/core/tensor.h"

namespace moe::loading {

// Every dtype the safetensors format defines, so that any valid file validates; only
// F32/F16/BF16/I8/I32 map to an engine DType.
enum class StDType { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64, kF8E4M3, kF8E5M2 };

struct TensorInfo {
  std::string name;
  StDType st_dtype;
  Shape shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
  uint64_t nbytes() const { return end - begin; }
};

// The parsed header alone: usable on any byte buffer (the fuzz target calls this).
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // absolute file offset of the data section (8 + header length)
};
// `file_size` is the size of the whole file; `bytes` holds at least its first 8 + N bytes.
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> bytes, uint64_t file_size,
                                           std::string_view file_name);

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const;
  const SafetensorsHeader& header() const { return header_; }
  const TensorInfo* find(std::string_view name) const;
  // A Tensor viewing the mapped bytes; keeps the mapping alive. Throws kUnsupported for dtypes
  // the engine does not compute with, kNotFound for unknown names.
  Tensor tensor(std::string_view name) const;
  std::span<const std::byte> bytes(const TensorInfo& info) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;
};

// Where a tensor's bytes live on disk (for packing and direct reads).
struct TensorLocation {
  std::filesystem::path file;
  uint64_t offset = 0;  // absolute
  uint64_t nbytes = 0;
};

// A checkpoint folder: `model.safetensors`, or the shards named by
// `model.safetensors.index.json` (shard names may not leave the folder; every shard must exist).
class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& dir);

  bool has(std::string_view name) const;
  Tensor tensor(std::string_view name) const;  // kNotFound names the tensor and the folder
  const TensorInfo& info(std::string_view name) const;
  TensorLocation location(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted
  uint64_t total_bytes() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t, std::less<>> owner_;  // tensor name -> index in files_
};

}  // namespace moe::loading
