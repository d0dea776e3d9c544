// Any bytes as model.safetensors.index.json beside two valid shards: the folder opens (and
// every tensor it lists reads) or moe::Error says why, never a crash or a file outside it.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "runtime/core/error.h"
#include "runtime/loading/safetensors.h"
#include "tests/fuzz/fuzz_temp_path.h"

namespace {

std::string one_tensor_shard(const std::string& name) {
  const std::string header = "{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
  return bytes + header + std::string(8, '\0');
}

// One folder per process, made once: the shards stay, the index is rewritten by every input.
const std::filesystem::path& folder() {
  static const std::filesystem::path dir = [] {
    const auto d = moe::fuzz::scratch_dir();
    std::filesystem::create_directories(d / "model");
    moe::fuzz::write_file(d / "model" / "model-00001-of-00002.safetensors", one_tensor_shard("a"));
    moe::fuzz::write_file(d / "model" / "model-00002-of-00002.safetensors", one_tensor_shard("b"));
    moe::fuzz::write_file(d / "outside.safetensors", one_tensor_shard("c"));  // what a ../ path would reach
    return d / "model";
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::write_file(folder() / "model.safetensors.index.json", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const auto checkpoint = moe::loading::Checkpoint::open(folder());
    for (const std::string& name : checkpoint.names()) {
      if (name == "c") __builtin_trap();  // a tensor of a file outside the folder was opened
      (void)checkpoint.tensor(name);
    }
  } catch (const moe::Error&) {
  }
  return 0;
}
