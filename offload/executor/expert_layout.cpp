#include "offload/executor/expert_layout.h"

#include <cstring>

#include "runtime/core/error.h"

namespace moe::offload {
namespace {

MatrixPlacement place(const Tensor& w, uint64_t& cursor) {
  MOE_CHECK(w.defined() && w.rank() == 2, ErrorCode::kInternal, "an expert matrix is not 2-D");
  MatrixPlacement p{w.dtype(), w.dim(0), w.dim(1), cursor, w.nbytes()};
  cursor = (cursor + p.bytes + 63) / 64 * 64;
  return p;
}

cpu::WeightMatrix view(const MatrixPlacement& p, const std::byte* base) {
  cpu::WeightMatrix m;
  m.data = base + p.offset;
  m.dtype = p.dtype;
  m.rows = p.rows;
  m.cols = p.cols;
  return m;
}

}  // namespace

ExpertLayout ExpertLayout::of(const model::GatedMlp& e) {
  ExpertLayout l;
  uint64_t cursor = 0;
  if (e.gated()) l.gate = place(e.gate.weight, cursor);
  l.up = place(e.up.weight, cursor);
  l.down = place(e.down.weight, cursor);
  if (e.up.bias.defined()) {
    MOE_CHECK(e.up.bias.dtype() == DType::kF32, ErrorCode::kInternal, "an expert's bias is not f32");
    l.up_bias = place(e.up.bias.reshape({1, e.up.bias.numel()}), cursor);
  }
  l.bytes = cursor;
  return l;
}

void ExpertLayout::pack(const model::GatedMlp& e, std::byte* dst) const {
  MOE_CHECK(ExpertLayout::of(e) == *this, ErrorCode::kInternal, "an expert's shapes differ from the layer's layout");
  if (gate.bytes) std::memcpy(dst + gate.offset, e.gate.weight.data<std::byte>(), gate.bytes);
  std::memcpy(dst + up.offset, e.up.weight.data<std::byte>(), up.bytes);
  std::memcpy(dst + down.offset, e.down.weight.data<std::byte>(), down.bytes);
  if (up_bias.bytes) std::memcpy(dst + up_bias.offset, e.up.bias.data<std::byte>(), up_bias.bytes);
}

model::GatedMlpMatrices ExpertLayout::views(const std::byte* base) const {
  model::GatedMlpMatrices m;
  if (gate.bytes) m.gate = view(gate, base);
  m.up = view(up, base);
  m.down = view(down, base);
  if (up_bias.bytes) m.up_bias = reinterpret_cast<const float*>(base + up_bias.offset);
  return m;
}

}  // namespace moe::offload
