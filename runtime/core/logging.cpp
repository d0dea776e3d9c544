#include "runtime/core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string_view>

namespace moe {

void init_logging() {
  auto logger = spdlog::stderr_color_mt("moe");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);
  if (const char* env = std::getenv("MOE_LOG"); env && *env) {
    // spdlog reads a name it does not know as "off", which would hide this very warning: say it,
    // and keep the default (as MOE_ISA does).
    const auto level = spdlog::level::from_str(env);
    if (level == spdlog::level::off && std::string_view(env) != "off")
      spdlog::warn("MOE_LOG={} is not trace, debug, info, warn, error, critical or off: using warn", env);
    else
      spdlog::set_level(level);
  }
}

}  // namespace moe
