#pragma once
// How fast all threads of a pool can issue f32 fused multiply-adds with the widest vectors the
// active instruction set has: the ceiling of compute-bound kernels (prefill GEMM), measured in
// the same run as the figure it bounds.
namespace moe::cpu {

class ThreadPool;

// Best of `repeats` passes; f32 floating-point operations per second (an FMA counts two).
double measure_fma_peak(ThreadPool& pool, int repeats = 5);

}  // namespace moe::cpu
