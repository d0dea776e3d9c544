#include "runtime/core/memory_limit.h"

#include <gtest/gtest.h>

namespace moe {
namespace {

TEST(MemoryLimit, ParsesCgroupLimits) {
  EXPECT_EQ(parse_cgroup_limit("838860800\n"), 838860800u);
  EXPECT_EQ(parse_cgroup_limit("max\n"), std::nullopt);                    // v2: no limit
  EXPECT_EQ(parse_cgroup_limit("9223372036854771712\n"), std::nullopt);    // v1: PAGE_COUNTER_MAX, no limit
  EXPECT_EQ(parse_cgroup_limit(""), std::nullopt);
  EXPECT_EQ(parse_cgroup_limit("12k"), std::nullopt);
}

TEST(MemoryLimit, ReadsMeminfoFieldsInBytes) {
  const std::string meminfo = "MemTotal:       24587056 kB\nMemFree:        16123456 kB\nMemAvailable:   22000000 kB\n";
  EXPECT_EQ(meminfo_bytes(meminfo, "MemAvailable"), uint64_t{22000000} * 1024);
  EXPECT_EQ(meminfo_bytes(meminfo, "MemTotal"), uint64_t{24587056} * 1024);
  EXPECT_EQ(meminfo_bytes(meminfo, "Mem"), std::nullopt);  // a prefix is not a field
  EXPECT_EQ(meminfo_bytes(meminfo, "SwapTotal"), std::nullopt);
}

TEST(MemoryLimit, FindsTheGroupOfEachHierarchy) {
  const std::string v1 = "9:name=systemd:/\n4:memory:/process_api/abc\n3:cpu,cpuacct:/x\n0::/\n";
  EXPECT_EQ(cgroup_path(v1, false), "/process_api/abc");
  EXPECT_EQ(cgroup_path(v1, true), "/");
  const std::string v2 = "0::/user.slice/session-1.scope\n";
  EXPECT_EQ(cgroup_path(v2, true), "/user.slice/session-1.scope");
  EXPECT_EQ(cgroup_path(v2, false), std::nullopt);
  EXPECT_EQ(cgroup_path("3:cpuset,memory:/a\n", false), "/a");  // memory among other controllers
}

TEST(MemoryLimit, DetectsSomethingOnThisMachine) {
  const MemoryLimit limit = detect_memory_limit();
  EXPECT_GT(limit.bytes, 0u);
  EXPECT_FALSE(limit.source.empty());
}

}  // namespace
}  // namespace moe
