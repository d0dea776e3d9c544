#pragma once
// How much memory this process may use: the tightest of its cgroup's limit (v2 memory.max or v1
// memory.limit_in_bytes, on its own group and every group above it) and the memory the kernel
// says is available (MemAvailable: free plus reclaimable page cache). A cgroup's limit counts
// the page cache the process's mapped and read files occupy, which is what makes a model larger
// than the limit thrash when it is only mapped.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moe {

struct MemoryLimit {
  uint64_t bytes = 0;
  std::string source;  // e.g. "cgroup v2 /user.slice/memory.max", "MemAvailable"
};

MemoryLimit detect_memory_limit();

// Parsers, for the tests: a memory.max / memory.limit_in_bytes text ("max", or a byte count; the
// v1 "no limit" value near 2^63 is none too), a /proc/meminfo field in bytes, and the group a
// /proc/self/cgroup text names for the v2 hierarchy ("0::PATH") or the v1 memory controller.
std::optional<uint64_t> parse_cgroup_limit(std::string_view text);
std::optional<uint64_t> meminfo_bytes(std::string_view meminfo, std::string_view field);
std::optional<std::string> cgroup_path(std::string_view proc_self_cgroup, bool v2);

}  // namespace moe
