#include "runtime/core/range_allocator.h"

#include <algorithm>

#include "runtime/core/error.h"

namespace moe {

RangeAllocator::RangeAllocator(uint64_t capacity, uint64_t alignment)
    : alignment_(alignment), capacity_(alignment ? capacity / alignment * alignment : 0) {
  MOE_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, ErrorCode::kInvalidArgument,
            "an alignment of {} bytes is not a power of two", alignment);
  if (capacity_ > 0) free_[0] = capacity_;
}

std::optional<uint64_t> RangeAllocator::allocate(uint64_t bytes) {
  if (bytes > capacity_) return std::nullopt;
  const uint64_t size = std::max<uint64_t>(alignment_, (bytes + alignment_ - 1) / alignment_ * alignment_);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < size) continue;
    const uint64_t offset = it->first, rest = it->second - size;
    free_.erase(it);
    if (rest > 0) free_[offset + size] = rest;
    used_[offset] = size;
    used_bytes_ += size;
    return offset;
  }
  return std::nullopt;
}

void RangeAllocator::release(uint64_t offset) {
  const auto it = used_.find(offset);
  MOE_CHECK(it != used_.end(), ErrorCode::kInternal, "offset {} of an arena was not allocated", offset);
  uint64_t begin = offset, size = it->second;
  used_.erase(it);
  used_bytes_ -= size;
  auto next = free_.lower_bound(begin);
  if (next != free_.end() && next->first == begin + size) {  // merge with the free range after
    size += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {  // and with the one before
    const auto prev = std::prev(next);
    if (prev->first + prev->second == begin) {
      begin = prev->first;
      size += prev->second;
      free_.erase(prev);
    }
  }
  free_[begin] = size;
}

uint64_t RangeAllocator::largest_free() const {
  uint64_t largest = 0;
  for (const auto& [offset, bytes] : free_) largest = std::max(largest, bytes);
  return largest;
}

}  // namespace moe
