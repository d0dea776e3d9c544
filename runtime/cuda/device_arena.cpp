#include "runtime/cuda/device_arena.h"

#include <cuda_runtime_api.h>

#include "kernels/cuda/device.h"
#include "runtime/core/error.h"

namespace moe::cuda {
namespace {
constexpr uint64_t kAlign = 256;
double mib(uint64_t bytes) { return double(bytes) / double(1 << 20); }
}  // namespace

DeviceArena::Block& DeviceArena::Block::operator=(Block&& other) noexcept {
  if (this != &other) {
    reset();
    arena_ = std::exchange(other.arena_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceArena::Block::reset() {
  if (arena_ && data_) {
    std::lock_guard lock(arena_->mutex_);
    arena_->book_.release(uint64_t(data_ - arena_->base_));
  }
  arena_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

// The capacity rounds up to whole aligned pieces, so an arena of n bytes holds an allocation of n.
DeviceArena::DeviceArena(int device, uint64_t capacity)
    : device_(select_device(device)), book_((capacity + kAlign - 1) / kAlign * kAlign, kAlign) {
  if (book_.capacity() == 0) return;
  void* p = nullptr;
  const cudaError_t rc = cudaMalloc(&p, book_.capacity());
  if (rc == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    fail(ErrorCode::kOutOfMemory, "GPU {} cannot give the engine {:.0f} MiB ({:.0f} MiB free of {:.0f}): lower --gpu-mem", device_,
         mib(book_.capacity()), mib(free), mib(total));
  }
  check(rc, "cudaMalloc (device arena)");
  base_ = static_cast<std::byte*>(p);
}

DeviceArena::~DeviceArena() {
  cudaSetDevice(device_);
  cudaFree(base_);
}

std::optional<DeviceArena::Block> DeviceArena::try_allocate(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  const auto offset = book_.allocate(bytes);
  if (!offset) return std::nullopt;
  Block b;
  b.arena_ = this;
  b.data_ = base_ + *offset;
  b.bytes_ = bytes;
  return b;
}

DeviceArena::Block DeviceArena::allocate(uint64_t bytes, const char* what) {
  if (auto b = try_allocate(bytes)) return std::move(*b);
  std::lock_guard lock(mutex_);
  fail(ErrorCode::kOutOfMemory, "{} needs {:.1f} MiB of GPU {}, whose budget of {:.1f} MiB has {:.1f} MiB left (largest piece {:.1f}): raise --gpu-mem",
       what, mib(bytes), device_, mib(book_.capacity()), mib(book_.capacity() - book_.used()), mib(book_.largest_free()));
}

uint64_t DeviceArena::used() const {
  std::lock_guard lock(mutex_);
  return book_.used();
}

}  // namespace moe::cuda
