// The CUDA device's passes, checked where no GPU is: every row of every run lands in exactly one
// piece, in order, each pass holds at most its rows and all but the last are full.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "offload/executor/expert_passes.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

TEST(ExpertPasses, CoverEveryRowOnceInOrder) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 500; ++trial) {
    const int64_t max_rows = 1 + int64_t(rng() % 64);
    std::vector<int64_t> rows(rng() % 12);
    int64_t total = 0;
    for (int64_t& r : rows) total += r = rng() % 4 == 0 ? 0 : int64_t(rng() % 150);
    const auto passes = split_into_passes(rows, max_rows);
    std::vector<int64_t> next(rows.size(), 0);  // the next row expected of each run
    size_t last_run = 0;
    int64_t seen = 0;
    for (size_t p = 0; p < passes.size(); ++p) {
      int64_t in_pass = 0;
      for (const RunPiece& piece : passes[p]) {
        ASSERT_GT(piece.rows, 0);
        ASSERT_GE(piece.run, last_run);  // runs in order
        ASSERT_EQ(piece.begin, next[piece.run]);
        ASSERT_EQ(piece.offset, in_pass);
        next[piece.run] += piece.rows;
        in_pass += piece.rows;
        last_run = piece.run;
      }
      ASSERT_LE(in_pass, max_rows);
      if (p + 1 < passes.size()) ASSERT_EQ(in_pass, max_rows) << "only the last pass may be short";
      seen += in_pass;
    }
    EXPECT_EQ(seen, total);
    EXPECT_EQ(next, rows);
    EXPECT_EQ(int64_t(passes.size()), (total + max_rows - 1) / max_rows);
  }
}

TEST(ExpertPasses, NothingToDoAndBadPassSizes) {
  EXPECT_TRUE(split_into_passes(std::vector<int64_t>{0, 0}, 8).empty());
  EXPECT_THROW(split_into_passes(std::vector<int64_t>{3}, 0), Error);
}

}  // namespace
}  // namespace moe::offload
