#include "runtime/core/read_file.h"

#include <fstream>
#include <vector>

#include "runtime/core/error.h"
#include "runtime/core/size_parse.h"

namespace moe {

std::string read_file(const std::filesystem::path& path, std::string_view what, uint64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  MOE_CHECK(in.is_open(), ErrorCode::kNotFound, "cannot open {} {}", what, path.string());
  // In pieces, stopping past the limit: the size of /dev/zero or a pipe is not known up front.
  std::string out;
  std::vector<char> piece(size_t(1) << 20);
  while (in) {
    in.read(piece.data(), std::streamsize(piece.size()));
    const auto got = size_t(in.gcount());
    MOE_CHECK(out.size() + got <= max_bytes, ErrorCode::kInvalidArgument, "{} {} is larger than {}, the most read",
              what, path.string(), format_bytes(max_bytes));
    out.append(piece.data(), got);
  }
  MOE_CHECK(!in.bad(), ErrorCode::kIo, "cannot read {} {}", what, path.string());
  return out;
}

}  // namespace moe
