#include "runtime/model/weight_format.h"

#include <charconv>

#include "runtime/core/error.h"

namespace moe::model {

WeightFormat parse_weight_format(std::string_view weights, std::string_view parts) {
  WeightFormat w;
  if (!weights.empty()) {
    const std::string_view dtype = weights.substr(0, weights.find(':'));
    const bool known = dtype == "int8" || dtype == "int4";
    int group = kDefaultGroupSize;
    bool group_ok = true;
    if (known && dtype.size() < weights.size()) {
      const std::string_view g = weights.substr(dtype.size() + 1);
      const auto [end, ec] = std::from_chars(g.data(), g.data() + g.size(), group);
      group_ok = ec == std::errc() && end == g.data() + g.size() && group >= 8 && group % 8 == 0;
      w.group_given = true;
    }
    MOE_CHECK(known && group_ok, ErrorCode::kInvalidArgument,
              "--weights {}: expected int8, int4, int8:G or int4:G with G a multiple of 8 (default {})", weights,
              kDefaultGroupSize);
    w.format = QuantFormat{dtype == "int8" ? DType::kI8 : DType::kI4, group};
  }
  w.experts = false;
  for (size_t begin = 0; begin <= parts.size();) {
    const size_t end = std::min(parts.find(',', begin), parts.size());
    const std::string_view part = parts.substr(begin, end - begin);
    if (part == "experts" || part == "all") w.experts = true;
    if (part == "dense" || part == "all") w.dense = true;
    if (part == "lm-head" || part == "all") w.lm_head = true;
    MOE_CHECK(part == "experts" || part == "dense" || part == "lm-head" || part == "all", ErrorCode::kInvalidArgument,
              "--quantize {}: expected a comma list of experts, dense, lm-head or all", parts);
    begin = end + 1;
  }
  MOE_CHECK(w.quantized() || parts == "experts", ErrorCode::kInvalidArgument,
            "--quantize {} needs --weights int8 or int4", parts);
  return w;
}

std::string describe(const WeightFormat& w) {
  if (!w.quantized()) return "as stored";
  return fmt::format("{}:g{}", dtype_name(w.format.dtype), w.format.group_size);
}

}  // namespace moe::model
