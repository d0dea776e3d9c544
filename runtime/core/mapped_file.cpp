#include "runtime/core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>

#include "runtime/core/error.h"

namespace moe {
namespace {

// Live mappings by start address, so release_pages can tell a file's pages from other memory.
struct Registry {
  std::mutex mutex;
  std::map<uintptr_t, uintptr_t> ranges;  // begin -> end
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo, "cannot open {}: {}", path.string(),
         std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::kIo, "{} is not a regular file", path.string());
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(ErrorCode::kIo, "cannot map {}: {}", path.string(), std::strerror(err));
    }
    file->data_ = static_cast<const std::byte*>(p);
    std::lock_guard lock(registry().mutex);
    registry().ranges[reinterpret_cast<uintptr_t>(p)] = reinterpret_cast<uintptr_t>(p) + file->size_;
  }
  ::close(fd);
  return file;
}

MappedFile::~MappedFile() {
  if (data_ == nullptr) return;
  {
    std::lock_guard lock(registry().mutex);
    registry().ranges.erase(reinterpret_cast<uintptr_t>(data_));
  }
  ::munmap(const_cast<std::byte*>(data_), size_);
}

bool MappedFile::release_pages(const void* p, size_t bytes) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
  static const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;  // whole pages only
  if (p == nullptr || last <= first) return false;
  std::lock_guard lock(registry().mutex);  // the mapping cannot go while its pages are released
  auto it = registry().ranges.upper_bound(begin);
  if (it == registry().ranges.begin()) return false;
  --it;
  if (end > it->second) return false;
  // PAGEOUT (Linux 5.4) drops the file's clean pages from the page cache when no one else maps
  // them, which is what frees the memory under a cgroup limit; DONTNEED only unmaps them here.
  // Older kernels refuse PAGEOUT (EINVAL): the unmapping alone is what they get.
#ifdef MADV_PAGEOUT
  (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
#endif
  MOE_CHECK(::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) == 0, ErrorCode::kIo,
            "cannot release mapped pages: {}", std::strerror(errno));
  return true;
}

bool MappedFile::read_ahead(const void* p, size_t bytes) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + bytes;
  static const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = begin / page * page;
  if (p == nullptr || bytes == 0) return false;
  std::lock_guard lock(registry().mutex);
  auto it = registry().ranges.upper_bound(begin);
  if (it == registry().ranges.begin()) return false;
  --it;
  if (end > it->second) return false;
  return ::madvise(reinterpret_cast<void*>(first), end - first, MADV_WILLNEED) == 0;
}

}  // namespace moe
