#pragma once
// Validators for the numeric flags of every command, saying the range in words:
//   --top-p: must be a number above 0 and at most 1; got nan
// CLI11's own (CLI::Range, CLI::PositiveNumber) print the largest double in 309 digits, let NaN
// through and cannot see an integer that CLI11 then clamps (2^64 into a uint64_t) or reads as
// octal (010); these check the text before CLI11 converts it.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <limits>

namespace moe::tools {

// A base-10 integer from lo to hi (of the flag's type T: int, int64_t or uint64_t), without
// leading zeros.
template <typename T>
CLI::Validator whole_number(T lo, T hi = std::numeric_limits<T>::max());

// A finite number from lo to hi; number_above refuses lo itself.
CLI::Validator number(double lo, double hi);
CLI::Validator number_above(double lo, double hi);

}  // namespace moe::tools
