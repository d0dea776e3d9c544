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
  l.gate = place(e.gate.weight, cursor);
  l.up = place(e.up.weight, cursor);
  l.down = place(e.down.weight, cursor);
  l.bytes = cursor;
  return l;
}

void ExpertLayout::pack(const model::GatedMlp& e, std::byte* dst) const {
  MOE_CHECK(ExpertLayout::of(e) == *this, ErrorCode::kInternal, "an expert's shapes differ from the layer's layout");
  std::memcpy(dst + gate.offset, e.gate.weight.data<std::byte>(), gate.bytes);
  std::memcpy(dst + up.offset, e.up.weight.data<std::byte>(), up.bytes);
  std::memcpy(dst + down.offset, e.down.weight.data<std::byte>(), down.bytes);
}

model::GatedMlpMatrices ExpertLayout::views(const std::byte* base) const {
  return {view(gate, base), view(up, base), view(down, base)};
}

}  // namespace moe::offload
