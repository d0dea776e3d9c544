#pragma once
// The date render_fixtures.py fixes for strftime_now (FIXED_NOW): 2025-03-14 09:26:53, a Friday.
#include <ctime>

namespace moe::chat::testing {

inline std::tm fixed_now() {
  std::tm t{};
  t.tm_year = 2025 - 1900;
  t.tm_mon = 2;
  t.tm_mday = 14;
  t.tm_hour = 9;
  t.tm_min = 26;
  t.tm_sec = 53;
  t.tm_wday = 5;
  t.tm_yday = 72;
  return t;
}

}  // namespace moe::chat::testing
