#include "offload/executor/expert_layout.h"

#include <cstring>

#include <fmt/format.h>

#include "runtime/core/error.h"

namespace moe::offload {
namespace {

MatrixPlacement place(const Tensor& w, uint64_t& cursor) {
  MOE_CHECK(w.defined() && w.rank() == 2, ErrorCode::kInternal, "an expert matrix is not 2-D");
  MatrixPlacement p{w.dtype(), w.dim(0), w.dim(1), cursor, w.nbytes()};
  cursor = (cursor + p.bytes + 63) / 64 * 64;
  return p;
}

// A matrix and then its scales, when it has them.
void place(const model::Linear& l, MatrixPlacement& data, MatrixPlacement& scales, uint64_t& cursor) {
  data = place(l.weight, cursor);
  if (l.quantized()) scales = place(l.scales, cursor);
  if (l.fp8()) {
    scales = place(l.block_scales, cursor);
    data.block_rows = l.block_rows;
    data.block_cols = l.block_cols;
  }
  if (l.mxfp4()) scales = place(l.exponents.reshape({l.out_features(), l.in_features() / 32}), cursor);
}

// The tensor of a matrix's scales piece, whichever kind it has.
const Tensor& scales_of(const model::Linear& l) { return l.fp8() ? l.block_scales : l.mxfp4() ? l.exponents : l.scales; }

// An f32 bias [n] as a [1, n] piece.
MatrixPlacement place_bias(const Tensor& bias, uint64_t& cursor) {
  MOE_CHECK(bias.dtype() == DType::kF32, ErrorCode::kInternal, "an expert's bias is not f32");
  return place(bias.reshape({1, bias.numel()}), cursor);
}

cpu::WeightMatrix view(const MatrixPlacement& p, const MatrixPlacement& scales, const std::byte* base) {
  cpu::WeightMatrix m;
  m.data = base + p.offset;
  m.dtype = p.dtype;
  m.rows = p.rows;
  m.cols = p.cols;
  if (p.dtype == DType::kF8E4M3) {
    m.block_scales = reinterpret_cast<const float*>(base + scales.offset);
    m.block_rows = p.block_rows;
    m.block_cols = p.block_cols;
    m.block_stride = scales.cols;
  } else if (p.dtype == DType::kMxfp4) {
    m.exponents = reinterpret_cast<const uint8_t*>(base + scales.offset);
  } else if (scales.bytes) {
    m.scales = reinterpret_cast<const float*>(base + scales.offset);
    m.group_size = int(p.cols / scales.cols);
  }
  return m;
}

void copy(const MatrixPlacement& p, const Tensor& t, std::byte* dst) {
  if (p.bytes) std::memcpy(dst + p.offset, t.data<std::byte>(), p.bytes);
}

}  // namespace

ExpertLayout ExpertLayout::of(const model::GatedMlp& e) {
  ExpertLayout l;
  uint64_t cursor = 0;
  if (e.gated()) place(e.gate, l.gate, l.gate_scales, cursor);
  place(e.up, l.up, l.up_scales, cursor);
  place(e.down, l.down, l.down_scales, cursor);
  if (e.up.bias.defined()) l.up_bias = place_bias(e.up.bias, cursor);
  if (e.down.bias.defined()) l.down_bias = place_bias(e.down.bias, cursor);
  l.swiglu_alpha = e.swiglu_alpha;
  l.swiglu_limit = e.swiglu_limit;
  l.bytes = cursor;
  return l;
}

void ExpertLayout::pack(const model::GatedMlp& e, std::byte* dst) const {
  MOE_CHECK(ExpertLayout::of(e) == *this, ErrorCode::kInternal, "an expert's shapes differ from the layer's layout");
  copy(gate, e.gate.weight, dst);
  copy(gate_scales, scales_of(e.gate), dst);
  copy(up, e.up.weight, dst);
  copy(up_scales, scales_of(e.up), dst);
  copy(down, e.down.weight, dst);
  copy(down_scales, scales_of(e.down), dst);
  copy(up_bias, e.up.bias, dst);
  copy(down_bias, e.down.bias, dst);
}

std::vector<ExpertLayout::Matrix> ExpertLayout::matrices() const {
  std::vector<Matrix> out;
  if (gate.bytes) out.push_back({&gate, &gate_scales});
  out.push_back({&up, &up_scales});
  out.push_back({&down, &down_scales});
  return out;
}

model::GatedMlpMatrices ExpertLayout::views(const std::byte* base, cpu::Activation act) const {
  model::GatedMlpMatrices m;
  m.act = act;
  if (gate.bytes) m.gate = view(gate, gate_scales, base);
  m.up = view(up, up_scales, base);
  m.down = view(down, down_scales, base);
  if (up_bias.bytes) m.up_bias = reinterpret_cast<const float*>(base + up_bias.offset);
  if (down_bias.bytes) m.down_bias = reinterpret_cast<const float*>(base + down_bias.offset);
  m.swiglu_alpha = swiglu_alpha;
  m.swiglu_limit = swiglu_limit;
  return m;
}

std::string ExpertLayout::format() const {
  if (up.dtype == DType::kF8E4M3) return fmt::format("fp8:{}x{}", up.block_rows, up.block_cols);
  if (up.dtype == DType::kMxfp4) return "mxfp4";
  if (!up_scales.bytes) return std::string(dtype_name(up.dtype));
  return fmt::format("{}:g{}", dtype_name(up.dtype), up.cols / up_scales.cols);
}

}  // namespace moe::offload
