#pragma once
// A whole (small) file as bytes: configs, profiles, plans, traces to import.
#include <filesystem>
#include <string>
#include <string_view>

namespace moe {

// Throws moe::Error: kNotFound when it cannot be opened ("cannot open <what> <path>"), kIo when
// reading fails.
std::string read_file(const std::filesystem::path& path, std::string_view what = "file");

}  // namespace moe
