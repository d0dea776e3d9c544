#pragma once
// The engine's host-to-device expert copies beside the link's ceiling, on one GPU in one run:
// a CudaExpertDevice upload of a Mixtral-8x7B-sized bf16 expert in the host tier's 4 MiB
// pieces, from pinned memory (the host pool) and from pageable memory (the mapped checkpoint,
// through the staging ring), against one raw pinned cudaMemcpyAsync of the same bytes. Also the
// expert's decode compute (one token through gate, up and down) as weight bandwidth.
#include <cstdint>

namespace moe::offload {

struct TransferBenchmark {
  uint64_t expert_bytes = 0;
  double raw_pinned = 0;      // bytes/s: the ceiling
  double from_pinned = 0;     // bytes/s through the engine's upload
  double from_pageable = 0;
  double decode_compute = 0;  // expert weight bytes/s of run_expert with one token (incl. its I/O)
};

// Throws moe::Error(kCuda) without a device. hidden/width: the expert's shape.
TransferBenchmark run_transfer_benchmark(int64_t hidden = 4096, int64_t width = 14336, int repeats = 10);

// Bytes/s of one raw pinned host-to-device copy of 256 MiB on `device` (median of 5): the link
// bound for the offloading decode benchmark.
double host_to_device_bandwidth(int device = 0);

}  // namespace moe::offload
