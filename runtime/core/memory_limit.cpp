#include "runtime/core/memory_limit.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace moe {
namespace {

std::optional<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

// The tightest limit on `group` and the groups above it under `root` (a child cannot use more
// than its parent allows).
std::optional<MemoryLimit> tightest_limit(const std::filesystem::path& root, std::string group, const char* file,
                                          const char* label) {
  std::optional<MemoryLimit> best;
  while (true) {
    const std::filesystem::path path = root / std::filesystem::path(group).relative_path() / file;
    if (const auto text = read_text(path))
      if (const auto limit = parse_cgroup_limit(*text); limit && (!best || *limit < best->bytes))
        best = MemoryLimit{*limit, std::string(label) + " " + (group.empty() ? "/" : group) + "/" + file};
    if (group.empty() || group == "/") break;
    const size_t slash = group.find_last_of('/');
    group = slash == std::string::npos || slash == 0 ? std::string() : group.substr(0, slash);
  }
  return best;
}

}  // namespace

std::optional<uint64_t> parse_cgroup_limit(std::string_view text) {
  text = trim(text);
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;  // "max" or junk
  if (value >= (uint64_t(1) << 62)) return std::nullopt;  // v1's PAGE_COUNTER_MAX: no limit
  return value;
}

std::optional<uint64_t> meminfo_bytes(std::string_view meminfo, std::string_view field) {
  size_t at = 0;
  while (at < meminfo.size()) {
    const size_t end = std::min(meminfo.find('\n', at), meminfo.size());
    std::string_view line = meminfo.substr(at, end - at);
    at = end + 1;
    if (line.size() <= field.size() || line.substr(0, field.size()) != field || line[field.size()] != ':') continue;
    line = trim(line.substr(field.size() + 1));
    uint64_t kib = 0;
    const auto [ptr, error] = std::from_chars(line.data(), line.data() + line.size(), kib);
    if (error != std::errc()) return std::nullopt;
    return kib * 1024;  // meminfo reports kB (KiB)
  }
  return std::nullopt;
}

std::optional<std::string> cgroup_path(std::string_view text, bool v2) {
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string_view::npos || second == std::string_view::npos) continue;
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const std::string_view path = line.substr(second + 1);
    if (v2 && line.substr(0, first) == "0" && controllers.empty()) return std::string(path);
    if (!v2) {
      for (size_t c = 0; c <= controllers.size();) {
        const size_t comma = std::min(controllers.find(',', c), controllers.size());
        if (controllers.substr(c, comma - c) == "memory") return std::string(path);
        c = comma + 1;
      }
    }
  }
  return std::nullopt;
}

MemoryLimit detect_memory_limit() {
  MemoryLimit best;
  if (const auto meminfo = read_text("/proc/meminfo")) {
    if (const auto available = meminfo_bytes(*meminfo, "MemAvailable")) best = {*available, "MemAvailable"};
    else if (const auto total = meminfo_bytes(*meminfo, "MemTotal")) best = {*total, "MemTotal"};
  }
  if (const auto self = read_text("/proc/self/cgroup")) {
    std::optional<MemoryLimit> group;
    if (const auto path = cgroup_path(*self, false))
      group = tightest_limit("/sys/fs/cgroup/memory", *path, "memory.limit_in_bytes", "cgroup v1");
    if (const auto path = cgroup_path(*self, true)) {
      for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
        if (!std::filesystem::exists(std::filesystem::path(root) / "cgroup.controllers")) continue;
        if (auto v2 = tightest_limit(root, *path, "memory.max", "cgroup v2"); v2 && (!group || v2->bytes < group->bytes))
          group = v2;
      }
    }
    if (group && (best.source.empty() || group->bytes < best.bytes)) best = *group;
  }
  return best;
}

}  // namespace moe
