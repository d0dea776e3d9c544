#pragma once
// The machine's memory-copy bandwidth, measured now: the ceiling that memory-bound benchmarks
// (decode, GEMV) print beside their own figure.
#include <cstddef>

namespace moe {

// Best of `repeats` copies of a `bytes` buffer (larger than the caches), in bytes per second
// counting bytes read (the same convention as the weight bytes a GEMV reads).
double measure_memcpy_bandwidth(size_t bytes = size_t{256} << 20, int repeats = 5);

}  // namespace moe
