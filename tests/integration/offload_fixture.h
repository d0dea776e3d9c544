#pragma once
// What the packing and offloading tests of the fixtures share: a bit-for-bit comparison, and a
// prompt's logits through the offloading executor on CPU virtual devices.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "offload/executor/expert_backing.h"
#include "offload/executor/offloaded_experts.h"
#include "offload/executor/predictor.h"
#include "offload/store/expert_store.h"
#include "tests/integration/hf_fixture.h"

namespace moe::testing {

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

// The logits of `prompt` with `slots` expert slots per device (and as many in the host pool when
// slots is odd, with no predictor; next-layer when even), over `store` or the model's own tensors.
inline std::vector<float> offloaded_logits(model::Transformer& t, const std::vector<int32_t>& prompt, int slots, int devices,
                                           const std::string& miss = "wait",
                                           std::shared_ptr<const offload::ExpertStore> store = {},
                                           offload::OffloadStats* stats = nullptr) {
  const offload::ExpertLayout layout = offload::ExpertBacking(t.weights(), store).layout();
  offload::OffloadOptions o;
  o.store = std::move(store);
  o.devices = devices;
  o.device_bytes = uint64_t(slots) * layout.bytes;
  o.host_bytes = uint64_t(slots % 2) * layout.bytes;
  o.miss = miss;
  offload::OffloadedExperts runner(t, o, offload::make_predictor(slots % 2 ? "none" : "next-layer", t, nullptr));
  t.set_expert_runner(&runner);
  std::vector<float> got = all_logits(t, prompt);
  t.set_expert_runner(nullptr);
  if (stats) *stats = runner.stats();
  return got;
}

}  // namespace moe::testing
