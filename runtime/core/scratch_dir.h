#pragma once
// A private temporary folder, removed with everything in it when the object goes.
#include <filesystem>
#include <string_view>

namespace moe {

class ScratchDir {
 public:
  explicit ScratchDir(std::string_view prefix = "moe");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace moe
