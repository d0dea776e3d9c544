#pragma once
// Logging goes through spdlog to stderr. The level comes from MOE_LOG (trace, debug, info,
// warn, error, off; default warn) so that stdout stays clean for generated text and --json.
#include <spdlog/spdlog.h>

namespace moe {

void init_logging();

}  // namespace moe
