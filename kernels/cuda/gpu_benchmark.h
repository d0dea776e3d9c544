#pragma once
// GPU kernel figures beside their ceiling, measured in the same run on the same device: expert
// GEMV bandwidth (bf16, int8, int4) against a device-to-device copy. (The engine's copies are
// offload/gpu/transfer_benchmark.h.)
#include <string>
#include <vector>

namespace moe::cuda {

struct GpuBenchmarkRow {
  std::string name;
  double bytes_per_second = 0;
  double ceiling_bytes_per_second = 0;
  std::string ceiling;
  double ratio() const { return ceiling_bytes_per_second > 0 ? bytes_per_second / ceiling_bytes_per_second : 0; }
};

struct GpuBenchmark {
  std::string device;
  std::vector<GpuBenchmarkRow> rows;
};

// Throws moe::Error(kCuda) when no device is present or a call fails.
GpuBenchmark run_gpu_benchmark(int64_t rows = 14336, int64_t cols = 4096, int repeats = 20);

}  // namespace moe::cuda
