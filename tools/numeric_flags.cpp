#include "tools/numeric_flags.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <string>
#include <system_error>

namespace moe::tools {

template <typename T>
CLI::Validator whole_number(T lo, T hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) {
        T v{};
        const char* end = text.data() + text.size();
        const auto [at, ec] = std::from_chars(text.data(), end, v);
        // CLI11 then reads 010 as octal 8 (and a check cannot rewrite the text): no leading zeros.
        const char* digits = text.data() + (text.starts_with('-') ? 1 : 0);
        if (ec != std::errc() || at != end || v < lo || v > hi || (end - digits > 1 && *digits == '0'))
          return fmt::format("must be a whole number from {} to {}; got {}", lo, hi, text);
        return std::string();
      },
      fmt::format("INT in [{} - {}]", lo, hi));
}
template CLI::Validator whole_number<int>(int, int);
template CLI::Validator whole_number<int64_t>(int64_t, int64_t);
template CLI::Validator whole_number<uint64_t>(uint64_t, uint64_t);

namespace {

CLI::Validator number_validator(double lo, double hi, bool above) {
  const std::string range = above ? fmt::format("above {} and at most {}", lo, hi) : fmt::format("from {} to {}", lo, hi);
  return CLI::Validator(
      [lo, hi, above, range](std::string& text) {
        double v = 0;
        const char* end = text.data() + text.size();
        const auto [at, ec] = std::from_chars(text.data(), end, v);
        // from_chars reads "nan" and "inf"; a finite value is meant everywhere.
        if (ec != std::errc() || at != end || !std::isfinite(v) || v < lo || v > hi || (above && v == lo))
          return fmt::format("must be a number {}; got {}", range, text);
        return std::string();
      },
      fmt::format("FLOAT in {}{} - {}]", above ? "(" : "[", lo, hi));
}

}  // namespace

CLI::Validator number(double lo, double hi) { return number_validator(lo, hi, false); }
CLI::Validator number_above(double lo, double hi) { return number_validator(lo, hi, true); }

}  // namespace moe::tools
