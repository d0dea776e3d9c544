// Any bytes as a placement plan file: load_plan validates it (MOEPLAN1 files carry no checksum,
// so mutated plans reach the decoder and the validator) or throws moe::Error, never crashes.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "placement/plan/plan_io.h"
#include "runtime/core/error.h"
#include "tests/fuzz/fuzz_temp_path.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path path = moe::fuzz::scratch_dir() / "input.plan";
  moe::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const auto plan = moe::placement::load_plan(path);
    (void)moe::placement::plan_to_json(plan);
  } catch (const moe::Error&) {
  }
  return 0;
}
