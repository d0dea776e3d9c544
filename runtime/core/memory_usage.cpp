#include "runtime/core/memory_usage.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace moe {

uint64_t peak_resident_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

uint64_t current_resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long pages_total = 0, pages_resident = 0;
  const int read = std::fscanf(f, "%llu %llu", &pages_total, &pages_resident);
  std::fclose(f);
  if (read != 2) return 0;
  return pages_resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

namespace {
// The number after `key` in a "Key: value" file, times `unit`; 0 when absent.
uint64_t proc_field(const char* path, const char* key, uint64_t unit) {
  std::FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char line[256];
  uint64_t value = 0;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, n) == 0 && line[n] == ':') {
      value = std::strtoull(line + n + 1, nullptr, 10) * unit;
      break;
    }
  std::fclose(f);
  return value;
}
}  // namespace

uint64_t anonymous_resident_bytes() { return proc_field("/proc/self/status", "RssAnon", 1024); }
uint64_t disk_read_bytes() { return proc_field("/proc/self/io", "read_bytes", 1); }

}  // namespace moe
