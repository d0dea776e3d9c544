#pragma once
// Names an expert: (layer, expert index within the layer).
#include <cstdint>
#include <functional>

namespace moe::offload {

struct ExpertKey {
  int32_t layer = 0;
  int32_t expert = 0;
  bool operator==(const ExpertKey&) const = default;
  auto operator<=>(const ExpertKey&) const = default;
};

struct ExpertKeyHash {
  size_t operator()(const ExpertKey& k) const {
    return std::hash<uint64_t>()((uint64_t(uint32_t(k.layer)) << 32) | uint32_t(k.expert));
  }
};

}  // namespace moe::offload
