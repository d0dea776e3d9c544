#pragma once
// How fast all threads of a pool can stream memory: the ceiling of memory-bound kernels
// (GEMV over weights) and of decode, measured in the same run as the figure it bounds.
#include <cstddef>

namespace moe::cpu {

class ThreadPool;

// Best of `repeats` passes in which every thread sums its slice of a `bytes` buffer with
// wide loads; bytes read per second.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{512} << 20, int repeats = 5);

// Best of `repeats` single-threaded memcpy calls over a `bytes` buffer; bytes copied per second.
double measure_memcpy_bandwidth(size_t bytes = size_t{256} << 20, int repeats = 5);

}  // namespace moe::cpu
