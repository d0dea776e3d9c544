#pragma once
// The process's memory footprint, for the stats line of `moe run` and the benchmarks.
#include <cstdint>

namespace moe {

uint64_t peak_resident_bytes();     // high-water mark of the resident set (getrusage)
uint64_t current_resident_bytes();  // from /proc/self/statm; 0 where unavailable
// The anonymous part of the resident set (/proc/self/status RssAnon): what the kernel cannot
// reclaim without swap, unlike mapped files' pages. 0 where unavailable.
uint64_t anonymous_resident_bytes();
// Bytes this process (all its threads) has made the block layer read from disk: page faults of
// mapped files, buffered and O_DIRECT reads (/proc/self/io read_bytes). 0 where unavailable.
uint64_t disk_read_bytes();

}  // namespace moe
