#pragma once
// The middle tier: pinned host memory (cudaHostAlloc when a GPU is present, so copies to the
// device run at full PCIe speed; 4 KiB-aligned memory otherwise, as O_DIRECT reads need),
// carved into blocks for expert blobs of any format, within a byte budget fixed at creation.
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

namespace moe::offload {

struct HostBlock {
  std::byte* data = nullptr;
  uint64_t bytes = 0;  // rounded up to the pool's 4 KiB granule
};

class HostPool {
 public:
  // Reserves `budget` bytes at once (rounded up to 4 KiB). Throws moe::Error(kOutOfMemory)
  // when the system cannot provide them.
  explicit HostPool(uint64_t budget, bool try_pinned = true);
  ~HostPool();
  HostPool(const HostPool&) = delete;
  HostPool& operator=(const HostPool&) = delete;

  // A block of at least `bytes`, or nullopt when the budget has no room (never over-allocates).
  std::optional<HostBlock> allocate(uint64_t bytes);
  void free(const HostBlock& block);

  uint64_t budget() const { return budget_; }
  uint64_t used() const;
  bool pinned() const { return pinned_; }
  std::pair<std::byte*, uint64_t> arena() const { return {base_, budget_}; }  // for io_uring registration

 private:
  std::byte* base_ = nullptr;
  uint64_t budget_ = 0;
  bool pinned_ = false;
  mutable std::mutex mutex_;
  std::map<uint64_t, uint64_t> free_;  // offset -> bytes, coalesced
  uint64_t used_ = 0;
};

}  // namespace moe::offload
