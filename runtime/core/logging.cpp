#include "runtime/core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace moe {

void init_logging() {
  auto logger = spdlog::stderr_color_mt("moe");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  const char* level = std::getenv("MOE_LOG");
  spdlog::set_level(level ? spdlog::level::from_str(level) : spdlog::level::warn);
}

}  // namespace moe
