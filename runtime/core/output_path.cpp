#include "runtime/core/output_path.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>

#include "runtime/core/error.h"

namespace moe {

void refuse_overwriting(const std::filesystem::path& out, std::initializer_list<std::filesystem::path> inputs) {
  std::error_code ec;
  const auto target = std::filesystem::weakly_canonical(out, ec);
  if (ec) return;  // nothing to compare: the write itself will say what is wrong
  for (const auto& input : inputs) {
    const auto in = std::filesystem::weakly_canonical(input, ec);
    if (ec) continue;
    MOE_CHECK(target != in, ErrorCode::kInvalidArgument, "-o {} would overwrite its own input", out.string());
    if (std::filesystem::is_directory(in, ec)) {
      const auto relative = target.lexically_relative(in);
      MOE_CHECK(relative.empty() || *relative.begin() == "..", ErrorCode::kInvalidArgument,
                "-o {} lies inside the input folder {}: write it elsewhere", out.string(), input.string());
    }
  }
}

std::filesystem::path partial_path(const std::filesystem::path& out) {
  static std::atomic<uint64_t> counter{0};
  const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  std::filesystem::path p = out;
  p += ".partial-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(stamp % 1000000);
  return p;
}

}  // namespace moe
