#pragma once
// How one routed expert's matrices sit in a flat buffer (a cache slot, a host block): gate, up,
// down in their stored dtype, each followed by its f32 group scales when it is int8/int4, its
// f32 block scales when it is fp8 or its u8 exponents when it is mxfp4 (a GeLU expert has no gate
// and an f32 up bias after down; a gpt-oss expert no gate, its fused gate_up as up and f32 up and
// down biases after down), each piece 64-byte aligned. For int8/int4
// experts this is the store's blob layout (store_writer.h), so a blob read lands in a slot as is.
// The same bytes viewed as matrices compute exactly what the model's tensors compute.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model/gated_mlp.h"
#include "runtime/model/weights.h"

namespace moe::offload {

struct MatrixPlacement {
  DType dtype = DType::kBF16;
  int64_t rows = 0, cols = 0;
  uint64_t offset = 0, bytes = 0;
  int block_rows = 0, block_cols = 0;  // fp8 data: the blocks its scales (the scales piece) cover
  bool operator==(const MatrixPlacement&) const = default;
};

struct ExpertLayout {
  MatrixPlacement gate, up, down;  // gate.bytes == 0: the GeLU form
  MatrixPlacement gate_scales, up_scales, down_scales;  // f32 [rows, groups] (fp8: the block grid; mxfp4: u8 exponents); bytes == 0 for float weights
  MatrixPlacement up_bias;         // f32 [1, width]; bytes == 0 when absent
  MatrixPlacement down_bias;       // f32 [1, hidden]: gpt-oss's; bytes == 0 when absent
  float swiglu_alpha = 0, swiglu_limit = 0;  // gpt-oss's clamped SwiGLU (model::GatedMlp)
  uint64_t bytes = 0;

  static ExpertLayout of(const model::GatedMlp& expert);
  // Copies the expert's tensors into `dst` (bytes() long).
  void pack(const model::GatedMlp& expert, std::byte* dst) const;
  // `act` is the gated form's activation (the model's hidden_act).
  model::GatedMlpMatrices views(const std::byte* base, cpu::Activation act = cpu::Activation::kSilu) const;
  // The matrices in a blob's order (store.proto): gate when there is one, up, down; each with its scales.
  struct Matrix {
    const MatrixPlacement *data, *scales;
  };
  std::vector<Matrix> matrices() const;
  // "bf16", "int8:g32", "fp8:128x128" or "mxfp4" as the store names formats.
  std::string format() const;
  bool operator==(const ExpertLayout&) const = default;
};

}  // namespace moe::offload
