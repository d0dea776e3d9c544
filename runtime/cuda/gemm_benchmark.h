#pragma once
// The grouped expert GEMM (prefill) beside its tensor-core ceiling measured in the same run: a
// third of cuBLAS's bf16 GEMM per expert (the grouped GEMM does three bf16 products per f32
// activation), with cuBLAS SGEMM on the experts' weights widened to f32 (the exact alternative) beside it.
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
