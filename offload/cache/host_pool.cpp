#include "offload/cache/host_pool.h"

#include <cstdlib>

#if MOE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#include <spdlog/spdlog.h>

#include "runtime/core/error.h"

namespace moe::offload {
namespace {

constexpr uint64_t kGranule = 4096;
uint64_t round_up(uint64_t v) { return (v + kGranule - 1) / kGranule * kGranule; }

}  // namespace

HostPool::HostPool(uint64_t budget, bool try_pinned) : budget_(round_up(budget)) {
  MOE_CHECK(budget_ > 0, ErrorCode::kInvalidArgument, "the host pool needs a budget above zero");
#if MOE_HAVE_CUDA
  if (try_pinned) {
    void* p = nullptr;
    const cudaError_t rc = cudaHostAlloc(&p, size_t(budget_), cudaHostAllocPortable);
    if (rc == cudaSuccess) {
      base_ = static_cast<std::byte*>(p);
      pinned_ = true;
    } else {
      cudaGetLastError();  // clear the sticky error; plain memory works without a GPU
      spdlog::info("host pool is not pinned: {}", cudaGetErrorString(rc));
    }
  }
#else
  (void)try_pinned;
#endif
  if (!base_) base_ = static_cast<std::byte*>(std::aligned_alloc(kGranule, size_t(budget_)));
  MOE_CHECK(base_ != nullptr, ErrorCode::kOutOfMemory, "cannot reserve {} bytes of host memory for experts", budget_);
  free_.emplace(0, budget_);
}

HostPool::~HostPool() {
#if MOE_HAVE_CUDA
  if (pinned_) {
    cudaFreeHost(base_);
    return;
  }
#endif
  std::free(base_);
}

std::optional<HostBlock> HostPool::allocate(uint64_t bytes) {
  const uint64_t need = round_up(std::max<uint64_t>(bytes, 1));
  std::lock_guard lock(mutex_);
  for (auto it = free_.begin(); it != free_.end(); ++it) {  // first fit: low addresses stay dense
    if (it->second < need) continue;
    const uint64_t offset = it->first, left = it->second - need;
    free_.erase(it);
    if (left) free_.emplace(offset + need, left);
    used_ += need;
    return HostBlock{base_ + offset, need};
  }
  return std::nullopt;
}

void HostPool::free(const HostBlock& block) {
  MOE_CHECK(block.data >= base_ && block.data + block.bytes <= base_ + budget_, ErrorCode::kInternal,
            "freeing a block the host pool does not own");
  std::lock_guard lock(mutex_);
  uint64_t offset = uint64_t(block.data - base_), bytes = block.bytes;
  auto next = free_.lower_bound(offset);
  MOE_CHECK(next == free_.end() || next->first >= offset + bytes, ErrorCode::kInternal, "double free in the host pool");
  if (next != free_.end() && next->first == offset + bytes) {  // merge with the following run
    bytes += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    MOE_CHECK(prev->first + prev->second <= offset, ErrorCode::kInternal, "double free in the host pool");
    if (prev->first + prev->second == offset) {  // merge with the preceding run
      prev->second += bytes;
      used_ -= block.bytes;
      return;
    }
  }
  free_.emplace(offset, bytes);
  used_ -= block.bytes;
}

uint64_t HostPool::used() const {
  std::lock_guard lock(mutex_);
  return used_;
}

}  // namespace moe::offload
