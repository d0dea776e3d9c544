#include "runtime/core/scratch_dir.h"

#include <stdlib.h>

#include <string>

#include "runtime/core/error.h"

namespace moe {

ScratchDir::ScratchDir(std::string_view prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
  MOE_CHECK(::mkdtemp(pattern.data()) != nullptr, ErrorCode::kIo, "cannot create a temporary folder in {}",
            std::filesystem::temp_directory_path().string());
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace moe
