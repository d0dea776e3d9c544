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

  // Drops this process's page mappings of the whole pages inside [p, p + bytes) when the range
  // lies in a live file mapping (madvise MADV_DONTNEED: the file's pages stay in the page cache,
  // unmapped, so the kernel may reclaim them first; a later read faults them back in). Anything
  // else, heap or anonymous memory whose contents DONTNEED would zero, is left alone: false.
  // Used once a copy of the bytes is kept elsewhere, so they are not held twice.
  static bool release_pages(const void* p, size_t bytes);
  // Asks the kernel to start reading [p, p + bytes) of a mapping now (MADV_WILLNEED: readahead
  // in large requests, asynchronous), so that the faults of a later read find it in flight.
  // A hint: returns false (and does nothing) outside a live file mapping.
  static bool read_ahead(const void* p, size_t bytes);
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::filesystem::path path_;
};

}  // namespace moe
