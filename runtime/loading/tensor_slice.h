#pragma once
// Names for parts of a checkpoint tensor, in numpy's notation: "t[a:b]" is rows a..b of t (the
// first dimension), "t[:, a:b]" columns a..b of a matrix, "t[a:b].T" those rows with their last
// two dimensions swapped (gpt-oss's bf16 experts, stored x @ W, as rows of outputs). Families
// that fuse experts or matrices into one tensor (DS-MoE's c_fc and c_proj, MoE++'s gate and up,
// gpt-oss's experts) name each expert's matrices this way: `moe pack` cuts them from the
// checkpoint and a store holds them under these names.
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/core/tensor.h"

namespace moe::loading {

struct TensorSlice {
  std::string tensor;  // the checkpoint's name
  int axis = -1;       // -1: the whole tensor; 0: rows; 1: columns
  int64_t begin = 0, end = 0;
  bool transposed = false;  // ".T": the slice's last two dimensions swapped
  bool whole() const { return axis < 0; }
};

// A plain name is the whole tensor; a malformed slice is moe::Error(kInvalidArgument).
TensorSlice parse_tensor_slice(std::string_view name);
std::string row_slice_name(const std::string& tensor, int64_t begin, int64_t end);
std::string column_slice_name(const std::string& tensor, int64_t begin, int64_t end);
std::string transposed_slice_name(const std::string& tensor, int64_t begin, int64_t end);  // rows, then ".T"

// The slice of `t` (the tensor the slice names): rows as a view, columns and transposed rows as
// a contiguous copy in t's dtype. A slice outside t is moe::Error(kCorrupt) naming `name`.
Tensor cut_slice(const Tensor& t, const TensorSlice& slice, std::string_view name);

// [..., A, B] -> [..., B, A]: a contiguous copy in t's dtype (whole bytes per element).
Tensor transposed_copy(const Tensor& t);

// One routed expert's tensors in the order gate, up, down (an empty gate: DS-MoE's GeLU form,
// whose up has a bias, up_bias; or gpt-oss's expert, whose up is the fused gate_up and whose
// matrices have their biases, and their exponents when MXFP4), each a plain name or a slice.
struct ExpertTensorNames {
  std::string gate, up, down, up_bias;
  std::string up_scales, down_scales, down_bias;  // gpt-oss's (the scales: MXFP4's exponents)
};

}  // namespace moe::loading
