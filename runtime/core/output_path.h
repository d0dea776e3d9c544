#pragma once
// Where commands write their outputs: never over their own inputs, and through a partial file
// of their own, renamed into place at the end, so an interrupted or concurrent write leaves no
// half-written output and two writers to one path never share a partial file.
#include <filesystem>
#include <initializer_list>

namespace moe {

// Throws moe::Error(kInvalidArgument) when `out` is one of `inputs`, or lies inside one that is
// a directory (a model folder).
void refuse_overwriting(const std::filesystem::path& out, std::initializer_list<std::filesystem::path> inputs);

// A partial-file name beside `out`, unique to this process and call.
std::filesystem::path partial_path(const std::filesystem::path& out);

}  // namespace moe
