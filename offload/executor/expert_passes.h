#pragma once
// A device's batch of expert runs cut into passes of at most `max_rows` rows (the size of its
// activation buffers): runs in order, a run's rows split where a pass fills, every pass full but
// the last. A piece names its run, so the device still chooses kernels by the run's whole row
// count and a token's bits do not depend on where the cut fell.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace moe::offload {

struct RunPiece {
  size_t run = 0;      // index into the batch
  int64_t begin = 0;   // first row of the run in this piece
  int64_t rows = 0;
  int64_t offset = 0;  // first row of the piece in its pass
};

// rows_per_run: each run's row count (0 allowed). max_rows > 0.
std::vector<std::vector<RunPiece>> split_into_passes(std::span<const int64_t> rows_per_run, int64_t max_rows);

}  // namespace moe::offload
