#pragma once
// The grouped expert GEMM (prefill) beside the machine's f32 GEMM ceiling measured in the same
// run: cuBLAS SGEMM over the same experts' weights already widened to f32, one call per expert.
#include <cstdint>
#include <vector>

#include "kernels/cuda/gpu_benchmark.h"

namespace moe::cuda {

// `experts` experts of [rows, cols] with `tokens` rows each (Mixtral-8x7B's gate projection during
// a 512-token prefill by default), in bf16, int8 and int4 (groups of 128). Throws
// moe::Error(kCuda) when no device is present or a call fails.
std::vector<GpuBenchmarkRow> run_gemm_benchmark(int experts = 8, int64_t tokens = 128, int64_t rows = 14336, int64_t cols = 4096,
                                                int repeats = 10);

}  // namespace moe::cuda
