#pragma once
// One device allocation of the engine's GPU budget, sub-allocated to what lives on the device for
// the whole run: resident dense weights (CudaLinear), the KV cache mirror (CudaAttention) and
// the expert cache's slots (CudaExpertDevice). One cudaMalloc up front means the budget is what
// the engine takes, the device never fragments under it, and a component that does not fit
// learns it at once (and falls back or says so) instead of failing in the middle of a step.
// Per-call scratch (activations, the f32 widening of one dense matrix) is outside it.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

#include "runtime/core/range_allocator.h"

namespace moe::cuda {

class DeviceArena {
 public:
  // A piece of the arena, given back when destroyed.
  class Block {
   public:
    Block() = default;
    Block(Block&& other) noexcept { *this = std::move(other); }
    Block& operator=(Block&& other) noexcept;
    ~Block() { reset(); }
    void reset();
    template <typename T = std::byte>
    T* get() const { return reinterpret_cast<T*>(data_); }
    uint64_t bytes() const { return bytes_; }
    explicit operator bool() const { return data_ != nullptr; }

   private:
    friend class DeviceArena;
    DeviceArena* arena_ = nullptr;
    std::byte* data_ = nullptr;
    uint64_t bytes_ = 0;
  };

  // Throws moe::Error(kCuda) without device `device`, kOutOfMemory (naming the free memory) when
  // the device cannot give `capacity` bytes.
  DeviceArena(int device, uint64_t capacity);
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  // Nothing when the arena has no free range of `bytes` (256-byte aligned pieces).
  std::optional<Block> try_allocate(uint64_t bytes);
  // Throws moe::Error(kOutOfMemory) naming `what`, the request and what is left.
  Block allocate(uint64_t bytes, const char* what);

  int device() const { return device_; }
  uint64_t capacity() const { return book_.capacity(); }
  uint64_t used() const;

 private:
  int device_;
  std::byte* base_ = nullptr;
  mutable std::mutex mutex_;
  RangeAllocator book_;
};

}  // namespace moe::cuda
