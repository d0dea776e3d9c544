#include "runtime/core/read_file.h"

#include <fstream>
#include <sstream>

#include "runtime/core/error.h"

namespace moe {

std::string read_file(const std::filesystem::path& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  MOE_CHECK(in.is_open(), ErrorCode::kNotFound, "cannot open {} {}", what, path.string());
  std::ostringstream s;
  s << in.rdbuf();
  MOE_CHECK(!in.bad(), ErrorCode::kIo, "cannot read {} {}", what, path.string());
  return s.str();
}

}  // namespace moe
