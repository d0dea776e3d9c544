#pragma once
// The matmul beside its ceilings, measured in the same run: a single token (decode) reads its
// weights once, so its figure is bytes/s against all threads' read bandwidth; a batch reuses
// every weight m times, so its figure is FLOP/s against the f32 FMA peak. Weights are spread
// over enough distinct matrices (`weight_bytes` in all) that no cache holds them.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"

namespace moe::cpu {

class ThreadPool;

struct MatmulShape {
  std::string name;  // what the product is in a model, e.g. "expert up 3584x1024"
  int64_t rows = 0, cols = 0;
};

struct MatmulBenchmarkRow {
  std::string shape, dtype;
  int64_t rows = 0, cols = 0, tokens = 0;
  int group_size = 0;
  double seconds_per_call = 0;
  double bytes_per_second = 0;  // weight bytes (with scales) read per second
  double flops_per_second = 0;
  double ratio = 0;  // to read bandwidth (one token) or to the FMA peak (a batch)
  double error = -1;  // a lossy activation mode's rows: relative RMS error against the exact mode
};

struct MatmulBenchmark {
  std::string isa;
  double read_bandwidth = 0, fma_peak = 0;
  std::vector<MatmulBenchmarkRow> rows;
};

// Under a lossy activation mode (matmul.h) the rows it changes are named "int8/a8", "int4/a8"
// (int8 mode) or "bf16/a16" (bf16 mode) and carry their error against the exact mode on random
// activations.
// Each dtype (f32, bf16, f16, int8, int4, fp8; int8/int4 with `group_size`, fp8 in 128 x 128 blocks) x shape x batch.
MatmulBenchmark run_matmul_benchmark(const std::vector<DType>& dtypes, const std::vector<MatmulShape>& shapes,
                                     const std::vector<int64_t>& batches, int group_size, size_t weight_bytes,
                                     double seconds_per_row, ThreadPool& pool);

}  // namespace moe::cpu
