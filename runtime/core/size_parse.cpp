#include "runtime/core/size_parse.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

#include "runtime/core/error.h"

namespace moe {

uint64_t parse_byte_size(std::string_view text) {
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  MOE_CHECK(ec == std::errc() && value >= 0 && std::isfinite(value), ErrorCode::kInvalidArgument,
            "'{}' is not a byte size (examples: 24GiB, 512MB, 4096)", text);
  std::string unit(end, s.data() + s.size());
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.front()))) unit.erase(0, 1);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  struct Unit {
    const char* name;
    double scale;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},        {"b", 1},       {"k", 1024.0},  {"kib", 1024.0}, {"kb", 1e3},
      {"m", 1048576.0}, {"mib", 1048576.0}, {"mb", 1e6}, {"g", 1073741824.0}, {"gib", 1073741824.0},
      {"gb", 1e9},    {"t", 1099511627776.0}, {"tib", 1099511627776.0}, {"tb", 1e12},
  };
  for (const Unit& u : kUnits) {
    if (unit == u.name) {
      const double bytes = value * u.scale;
      MOE_CHECK(bytes < 1.8e19, ErrorCode::kInvalidArgument, "byte size '{}' is too large", text);
      return static_cast<uint64_t>(std::llround(bytes));
    }
  }
  fail(ErrorCode::kInvalidArgument, "'{}' has an unknown unit (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", text);
}

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int i = 0;
  while (v >= 1024.0 && i < 4) {
    v /= 1024.0;
    ++i;
  }
  return i == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, kNames[i]);
}

}  // namespace moe
