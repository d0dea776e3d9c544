#include "runtime/loading/tensor_slice.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "runtime/core/error.h"

namespace moe::loading {
namespace {

bool parse_range(std::string_view s, int64_t* begin, int64_t* end) {
  const size_t colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  const auto [b_end, b_ec] = std::from_chars(s.data(), s.data() + colon, *begin);
  const auto [e_end, e_ec] = std::from_chars(s.data() + colon + 1, s.data() + s.size(), *end);
  return b_ec == std::errc() && e_ec == std::errc() && b_end == s.data() + colon && e_end == s.data() + s.size() &&
         0 <= *begin && *begin < *end;
}

}  // namespace

TensorSlice parse_tensor_slice(std::string_view name) {
  TensorSlice s;
  const size_t open = name.find('[');
  if (open == std::string_view::npos) {
    s.tensor = std::string(name);
    return s;
  }
  constexpr std::string_view kTransposed = "].T";
  if (name.size() > kTransposed.size() && name.substr(name.size() - kTransposed.size()) == kTransposed) {
    s.transposed = true;
    name.remove_suffix(2);
  }
  constexpr const char* kNotASlice = "'{}' is not a tensor slice (t[a:b], t[:, a:b] or t[a:b].T)";
  MOE_CHECK(open > 0 && name.back() == ']', ErrorCode::kInvalidArgument, kNotASlice, name);
  s.tensor = std::string(name.substr(0, open));
  std::string_view range = name.substr(open + 1, name.size() - open - 2);
  constexpr std::string_view kColumns = ":, ";
  s.axis = range.substr(0, kColumns.size()) == kColumns ? 1 : 0;
  if (s.axis == 1) range.remove_prefix(kColumns.size());
  MOE_CHECK(!s.transposed || s.axis == 0, ErrorCode::kInvalidArgument, "'{}': only row slices are transposed (t[a:b].T)", name);
  MOE_CHECK(parse_range(range, &s.begin, &s.end), ErrorCode::kInvalidArgument, kNotASlice, name);
  return s;
}

std::string row_slice_name(const std::string& tensor, int64_t begin, int64_t end) { return fmt::format("{}[{}:{}]", tensor, begin, end); }

std::string column_slice_name(const std::string& tensor, int64_t begin, int64_t end) {
  return fmt::format("{}[:, {}:{}]", tensor, begin, end);
}

std::string transposed_slice_name(const std::string& tensor, int64_t begin, int64_t end) {
  return row_slice_name(tensor, begin, end) + ".T";
}

Tensor transposed_copy(const Tensor& t) {
  MOE_CHECK(t.rank() >= 2 && t.is_contiguous() && dtype_bits(t.dtype()) % 8 == 0, ErrorCode::kUnsupported,
            "only contiguous tensors of whole bytes are transposed, not {} {}", dtype_name(t.dtype()),
            shape_to_string(t.shape()));
  const int64_t A = t.dim(t.rank() - 2), B = t.dim(t.rank() - 1), outer = t.numel() / std::max<int64_t>(A * B, 1);
  Shape shape = t.shape();
  std::swap(shape[shape.size() - 2], shape[shape.size() - 1]);
  const size_t element = dtype_bytes(t.dtype(), 1);
  Tensor out = Tensor::empty(t.dtype(), std::move(shape));
  const auto* src = t.data<std::byte>();
  auto* dst = out.data<std::byte>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t a = 0; a < A; ++a)
      for (int64_t b = 0; b < B; ++b)
        std::memcpy(dst + size_t((o * B + b) * A + a) * element, src + size_t((o * A + a) * B + b) * element, element);
  return out;
}

Tensor cut_slice(const Tensor& t, const TensorSlice& s, std::string_view name) {
  if (s.whole()) return t;
  MOE_CHECK(t.rank() > s.axis && s.end <= t.dim(s.axis), ErrorCode::kCorrupt, "'{}' lies outside tensor '{}' of shape {}", name,
            s.tensor, shape_to_string(t.shape()));
  if (s.axis == 0) return s.transposed ? transposed_copy(t.slice_rows(s.begin, s.end)) : t.slice_rows(s.begin, s.end);
  MOE_CHECK(t.rank() == 2 && t.is_contiguous() && dtype_bits(t.dtype()) % 8 == 0, ErrorCode::kUnsupported,
            "'{}': columns are cut from contiguous matrices of whole bytes only", name);
  const int64_t rows = t.dim(0), cols = t.dim(1), width = s.end - s.begin;
  const size_t element = dtype_bytes(t.dtype(), 1);
  Tensor out = Tensor::empty(t.dtype(), {rows, width});
  const auto* src = t.data<std::byte>();
  auto* dst = out.data<std::byte>();
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + size_t(r * width) * element, src + size_t(r * cols + s.begin) * element, size_t(width) * element);
  return out;
}

}  // namespace moe::loading
