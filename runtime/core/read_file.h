#pragma once
// A whole (small) file as bytes: configs, profiles, plans, traces to import.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace moe {

// The most read_file reads unless told: a path that never ends (/dev/zero, a FIFO) or a huge
// file is refused instead of filling memory.
inline constexpr uint64_t kReadFileLimit = uint64_t(1) << 30;

// Throws moe::Error: kNotFound when it cannot be opened ("cannot open <what> <path>"), kIo when
// reading fails, kInvalidArgument past max_bytes.
std::string read_file(const std::filesystem::path& path, std::string_view what = "file",
                      uint64_t max_bytes = kReadFileLimit);

}  // namespace moe
