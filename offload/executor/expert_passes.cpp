#include "offload/executor/expert_passes.h"

#include <algorithm>

#include "runtime/core/error.h"

namespace moe::offload {

std::vector<std::vector<RunPiece>> split_into_passes(std::span<const int64_t> rows_per_run, int64_t max_rows) {
  MOE_CHECK(max_rows > 0, ErrorCode::kInvalidArgument, "a pass of {} rows", max_rows);
  std::vector<std::vector<RunPiece>> passes;
  int64_t filled = max_rows;  // the current pass is full: the next piece opens one
  for (size_t run = 0; run < rows_per_run.size(); ++run)
    for (int64_t begin = 0; begin < rows_per_run[run];) {
      if (filled == max_rows) {
        passes.emplace_back();
        filled = 0;
      }
      const int64_t n = std::min(rows_per_run[run] - begin, max_rows - filled);
      passes.back().push_back({run, begin, n, filled});
      filled += n;
      begin += n;
    }
  return passes;
}

}  // namespace moe::offload
