#include "offload/executor/expert_device.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace moe::offload {
namespace {

class HostUpload final : public ExpertDevice::Upload {
 public:
  explicit HostUpload(std::byte* dst) : dst_(dst) {}
  void write(uint64_t offset, const std::byte* src, uint64_t bytes) override { std::memcpy(dst_ + offset, src, bytes); }
  void finish() override {}

 private:
  std::byte* dst_;
};

constexpr std::align_val_t kAlignment{256};

}  // namespace

CpuExpertDevice::~CpuExpertDevice() {
  for (std::byte* b : blocks_) ::operator delete(b, kAlignment);
}

std::byte* CpuExpertDevice::allocate(uint64_t bytes) {
  auto* b = static_cast<std::byte*>(::operator new(std::max<uint64_t>(bytes, 256), kAlignment));
  std::memset(b, 0, bytes);  // fault the pages in now, not during the first tokens
  blocks_.push_back(b);
  return b;
}

std::unique_ptr<ExpertDevice::Upload> CpuExpertDevice::begin_upload(std::byte* dst) { return std::make_unique<HostUpload>(dst); }

void CpuExpertDevice::run_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) {
  model::run_gated_mlp(w, x, m, out, scratch_);
}

}  // namespace moe::offload
