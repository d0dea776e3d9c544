#pragma once
// GPU kernel figures beside their ceiling, measured in the same run on the same device: expert
// GEMV bandwidth (bf16, int8, int4) against a device-to-device copy. (The grouped GEMM against
// cuBLAS is runtime/cuda/gemm_benchmark.h; the engine's copies offload/gpu/transfer_benchmark.h.)
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace moe::cuda {

struct GpuBenchmarkRow {
  enum class Unit { kBytes, kFlops };  // per second
  std::string name;
  double value = 0;
  double ceiling_value = 0;
  std::string ceiling;
  Unit unit = Unit::kBytes;
  double ratio() const { return ceiling_value > 0 ? value / ceiling_value : 0; }
};

struct GpuBenchmark {
  std::string device;
  std::vector<GpuBenchmarkRow> rows;
};

// Median of `repeats` event-timed runs of `work` on `stream` after two warm-ups, in seconds.
double median_seconds(const std::function<void()>& work, int repeats, cudaStream_t stream);

// Throws moe::Error(kCuda) when no device is present or a call fails.
GpuBenchmark run_gpu_benchmark(int64_t rows = 14336, int64_t cols = 4096, int repeats = 20);

}  // namespace moe::cuda
