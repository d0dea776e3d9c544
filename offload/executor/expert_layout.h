#pragma once
// How one routed expert's matrices sit in a flat buffer (a cache slot, a host block): gate, up,
// down in their stored dtype, each followed by its f32 group scales when it is int8/int4 or its
// f32 block scales when it is fp8 (a GeLU
// expert has no gate and an f32 up bias after down), each piece 64-byte aligned. For int8/int4
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
  MatrixPlacement gate_scales, up_scales, down_scales;  // f32 [rows, groups] (fp8: the block grid); bytes == 0 for float weights
  MatrixPlacement up_bias;         // f32 [1, width]; bytes == 0 when absent
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
  // "bf16", "int8:g32" or "fp8:128x128" as the store names formats.
  std::string format() const;
  bool operator==(const ExpertLayout&) const = default;
};

}  // namespace moe::offload
