#pragma once
// Converting a loaded model's matrices to int8/int4 (`--weights`): owned, resident buffers in
// the layout of kernels/cpu/quantize.h that the normal forward runs through the int8/int4
// matmul, with the error of the conversion measured against the weights it replaced.
#include <string>
#include <vector>

#include "runtime/model/weight_format.h"
#include "runtime/model/weights.h"

namespace moe::model {

// One part of the model (experts, dense, LM head) and how far its quantised weights are from
// the checkpoint's.
struct QuantizedPart {
  std::string part;    // "experts", "dense" or "lm-head"
  std::string format;  // "int8:g32"
  std::string origin;  // "converted at load" or "store copies"
  int64_t matrices = 0;
  uint64_t bytes_before = 0, bytes_after = 0;  // weights and scales
  double rms_rel_error = 0;  // sqrt(sum (q - x)^2 / sum x^2) over the part's weights
  double max_rel_error = 0;  // the largest max|q - x| / max|x| of one matrix
};

struct QuantizationReport {
  std::vector<QuantizedPart> parts;
  bool empty() const { return parts.empty(); }
  // "[weights: experts int8:g32 (converted at load) 1.41 GB -> 0.75 GB, relative RMS error 0.41%; ...]"
  std::string describe() const;
};

// Converts the parts `format` selects, leaving matrices that are already int8/int4 (a store's
// copies) as they are; the replaced weights are released as far as the model held them.
// Throws moe::Error(kInvalidArgument) before converting anything when the group size does not
// divide a selected matrix's input width.
std::vector<QuantizedPart> quantize_weights(ModelWeights& weights, const WeightFormat& format);

}  // namespace moe::model
