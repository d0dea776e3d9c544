#pragma once
// Streams every expert blob of a store at several queue depths through each I/O method and
// compares the rate with the disk's own sequential O_DIRECT rate on the same file (fio, or dd
// when fio is missing), measured in the same run.
#include <filesystem>
#include <string>
#include <vector>

namespace moe::offload {

struct IoBenchmarkRow {
  std::string method;  // "io_uring" or "pread"
  int queue_depth = 0;
  bool direct = false;
  uint64_t bytes = 0;
  double seconds = 0;
  double bytes_per_second() const { return seconds > 0 ? double(bytes) / seconds : 0; }
};

struct IoBenchmark {
  std::vector<IoBenchmarkRow> rows;
  double ceiling_bytes_per_second = 0;  // 0 when neither fio nor dd could run
  std::string ceiling_tool;             // the command that measured it
};

IoBenchmark run_io_benchmark(const std::filesystem::path& store, const std::vector<int>& queue_depths, int passes = 2);

}  // namespace moe::offload
