#pragma once
// The process's memory footprint, for the stats line of `moe run` and the benchmarks.
#include <cstdint>

namespace moe {

uint64_t peak_resident_bytes();     // high-water mark of the resident set (getrusage)
uint64_t current_resident_bytes();  // from /proc/self/statm; 0 where unavailable

}  // namespace moe
