// Hardware profiles: every shipped profile loads and names its sources; bases merge; bad
// files are refused with the field's name.
#include <gtest/gtest.h>

#include <filesystem>

#include "placement/hardware/hardware_profile.h"
#include "runtime/core/error.h"

namespace moe::placement {
namespace {

TEST(HardwareProfiles, EveryShippedProfileLoadsWithSources) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(MOE_SOURCE_DIR) / "configs" / "hardware")) {
    const HardwareProfile p = load_hardware_profile(entry.path().string());
    ++count;
    EXPECT_EQ(p.name + ".yaml", entry.path().filename().string());
    EXPECT_GT(p.gpu_memory_bytes, 4e9) << p.name;
    EXPECT_GT(p.gpu_memory_bandwidth, p.host_to_device_bandwidth) << p.name;
    EXPECT_GT(p.host_memory_bandwidth, p.nvme_read_bandwidth) << p.name;
    for (const char* section : {"gpu", "peers", "host", "nvme"}) EXPECT_FALSE(p.sources.at(section).empty()) << p.name;
    if (p.gpu_count > 1) {
      EXPECT_NE(p.peer_link, PeerLink::kNone) << p.name;
    }
  }
  EXPECT_GE(count, 7);
  const HardwareProfile x8 = load_hardware_profile("h100-sxm-80gb-x8-nvlink");
  EXPECT_EQ(x8.gpu_count, 8);
  EXPECT_EQ(x8.peer_link, PeerLink::kNvlink);
  EXPECT_DOUBLE_EQ(x8.gpu_memory_bandwidth, 3350e9);  // from its base
}

TEST(HardwareProfiles, RejectsBadFiles) {
  const std::string good = R"(name: t
gpu: {model: x, count: 1, memory_gib: 8, memory_gb_per_s: 100, bf16_tflops: 10, host_link_gb_per_s: 10, source: s}
peers: {link: none, gb_per_s: 0, source: s}
host: {memory_gib: 8, memory_gb_per_s: 10, cpu_cores: 2, cpu_gflops: 10, source: s}
nvme: {read_gb_per_s: 1, iops: 1000, source: s}
)";
  EXPECT_NO_THROW(parse_hardware_profile(good, "good"));
  const auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      parse_hardware_profile(text, "bad.yaml");
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  expect_error(replace("memory_gib: 8, memory_gb_per_s: 100", "memory_gib: -8, memory_gb_per_s: 100"), "gpu.memory_gib");
  expect_error(replace("bf16_tflops: 10", "bf16_tflops: lots"), "gpu.bf16_tflops");
  expect_error(replace("nvme: {read_gb_per_s: 1, iops: 1000, source: s}", "nvme: {read_gb_per_s: 1, iops: 1000}"), "source");
  expect_error(replace("count: 1", "count: 2"), "peer link");
  expect_error(replace("link: none", "link: carrier-pigeon"), "peers.link");
  expect_error("name: [unclosed", "not valid YAML");
  expect_error("- a list", "mapping");
  EXPECT_THROW(load_hardware_profile("no-such-machine"), Error);
}

}  // namespace
}  // namespace moe::placement
