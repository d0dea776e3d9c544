#pragma once
// The format a model's weights live in at run time (`--weights int8|int4|int8:G|int4:G` with
// `--quantize experts,dense,lm-head`): the checkpoint's own dtype, or int8/int4 in groups of G
// columns (kernels/cpu/quantize.h) for the parts asked. Routers, embeddings and norms always
// keep the checkpoint's dtype: routing decisions and the residual stream stay the model's own.
#include <string>
#include <string_view>

#include "runtime/core/dtype.h"

namespace moe::model {

// 32 columns a group, as llama.cpp's Q8_0/Q4_0 blocks: the scales cost 1/8 (int8) or 1/4 (int4)
// of a byte per weight, and 32 is one accumulation block of the matmul.
inline constexpr int kDefaultGroupSize = 32;

struct WeightFormat {
  QuantFormat format;              // dtype kBF16: as stored (nothing converted)
  bool group_given = false;        // `int8` alone takes a store's int8 copy of any group size
  bool experts = true, dense = false, lm_head = false;  // the parts converted
  bool quantized() const { return format.dtype == DType::kI8 || format.dtype == DType::kI4; }
};

// `weights`: "" (as stored), "int8", "int4", "int8:G" or "int4:G" (G a multiple of 8);
// `parts`: a comma list of experts, dense, lm-head or all. Throws moe::Error(kInvalidArgument)
// naming the flag for anything else, and for parts without a format.
WeightFormat parse_weight_format(std::string_view weights, std::string_view parts = "experts");

// "int8:g32" (the expert store's spelling), or "as stored".
std::string describe(const WeightFormat& format);

}  // namespace moe::model
