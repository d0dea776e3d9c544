#pragma once
// First-fit sub-allocation of one contiguous range [0, capacity): the bookkeeping of a device
// arena (runtime/cuda/device_arena.h), kept apart from CUDA so the CPU tests cover it. Offsets
// are aligned; freed ranges merge with free neighbours, so freeing everything gives back one
// range of the whole capacity.
#include <cstdint>
#include <map>
#include <optional>

namespace moe {

class RangeAllocator {
 public:
  // alignment: a power of two; capacity is rounded down to it.
  explicit RangeAllocator(uint64_t capacity, uint64_t alignment = 256);
  // The offset of `bytes` (rounded up to the alignment, at least one unit), or nothing when no
  // free range holds them.
  std::optional<uint64_t> allocate(uint64_t bytes);
  // Throws moe::Error(kInternal) for an offset allocate() did not return (or returned already freed).
  void release(uint64_t offset);
  uint64_t capacity() const { return capacity_; }
  uint64_t used() const { return used_bytes_; }
  uint64_t largest_free() const;

 private:
  uint64_t alignment_, capacity_, used_bytes_ = 0;
  std::map<uint64_t, uint64_t> free_;  // offset -> bytes: disjoint, never adjacent
  std::map<uint64_t, uint64_t> used_;  // offset -> bytes
};

}  // namespace moe
