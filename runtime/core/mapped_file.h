#pragma once
// A read-only memory map of a whole file; unmapped when the last shared owner goes.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>

namespace moe {

class MappedFile {
 public:
  // Throws moe::Error (kNotFound, kIo) naming the path.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::filesystem::path path_;
};

}  // namespace moe
