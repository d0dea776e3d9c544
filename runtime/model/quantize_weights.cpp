#include "runtime/model/quantize_weights.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cpu/quantize.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/core/error.h"
#include "runtime/core/size_parse.h"
#include "runtime/model/weight_matrix.h"
#include "runtime/model/weight_walk.h"

namespace moe::model {
namespace {

const char* part_name(WeightPart part) {
  switch (part) {
    case WeightPart::kExpert: return "experts";
    case WeightPart::kDense: return "dense";
    case WeightPart::kLmHead: return "lm-head";
    case WeightPart::kRouter: return "router";
  }
  return "?";
}

bool selected(const WeightFormat& f, WeightPart part) {
  return (part == WeightPart::kExpert && f.experts) || (part == WeightPart::kDense && f.dense) ||
         (part == WeightPart::kLmHead && f.lm_head);
}

// Sums of one row's conversion, kept per row so the totals add in row order whatever the threads.
struct RowError {
  double err_sq = 0, ref_sq = 0, err_max = 0, ref_max = 0;
};

// Replaces l's weight by its quantised copy and returns the error of each row.
std::vector<RowError> quantize_linear(Linear& l, QuantFormat format) {
  const cpu::WeightMatrix src = matrix_of(l);
  const int64_t rows = src.rows, cols = src.cols;
  Tensor data = Tensor::empty(format.dtype, {rows, cols});
  Tensor scales = Tensor::empty(DType::kF32, {rows, cols / format.group_size});
  const size_t row_bytes = cpu::quantized_data_bytes(format, 1, cols);  // cols is even: rows start on a byte
  const size_t row_scales = cpu::quantized_scale_count(format, 1, cols);
  std::vector<RowError> errors(static_cast<size_t>(rows));
  cpu::ThreadPool::global().parallel_for(rows, [&](int64_t begin, int64_t end) {
    std::vector<float> x(static_cast<size_t>(cols)), back(static_cast<size_t>(cols));
    for (int64_t r = begin; r < end; ++r) {
      cpu::row_to_f32(src, r, x.data());
      uint8_t* q = data.data<uint8_t>() + size_t(r) * row_bytes;
      float* s = scales.data<float>() + size_t(r) * row_scales;
      cpu::quantize_rows(x.data(), 1, cols, format, q, s);
      cpu::dequantize_rows(q, s, 1, cols, format, back.data());
      RowError& e = errors[size_t(r)];
      for (int64_t c = 0; c < cols; ++c) {
        const double ref = x[size_t(c)], diff = double(back[size_t(c)]) - ref;
        e.err_sq += diff * diff;
        e.ref_sq += ref * ref;
        e.err_max = std::max(e.err_max, std::fabs(diff));
        e.ref_max = std::max(e.ref_max, std::fabs(ref));
      }
    }
  });
  l.weight = std::move(data);
  l.scales = std::move(scales);
  l.block_scales = Tensor();  // an FP8 weight's, now dequantised into the copy
  l.block_rows = l.block_cols = 0;
  l.exponents = Tensor();  // an MXFP4 weight's
  return errors;
}

// The largest multiple of 8 up to `limit` dividing every width, or 0.
int fitting_group(const std::vector<int64_t>& widths, int limit) {
  const int64_t g = std::accumulate(widths.begin(), widths.end(), int64_t{0}, [](int64_t a, int64_t b) { return std::gcd(a, b); });
  for (int candidate = limit / 8 * 8; candidate >= 8; candidate -= 8)
    if (g % candidate == 0) return candidate;
  return 0;
}

}  // namespace

std::vector<QuantizedPart> quantize_weights(ModelWeights& weights, const WeightFormat& format) {
  if (!format.quantized()) return {};
  // gpt-oss's fused experts are converted one expert at a time, as moe pack's copies are: cut as
  // views of the fused tensors, which go once every expert holds its own copy.
  std::vector<GptOssExpertWeights*> fused;
  if (selected(format, WeightPart::kExpert))
    for (LayerWeights& layer : weights.layers)
      if (GptOssExpertWeights& w = layer.moe.gpt_oss; w.gate_up.defined()) {
        std::vector<GatedMlp> cut;
        for (int64_t e = 0; e < w.experts(); ++e) cut.push_back(gpt_oss_expert(w, e));
        w.cut = std::move(cut);
        fused.push_back(&w);
      }
  const int group = format.format.group_size;
  std::vector<std::pair<Linear*, WeightPart>> todo;
  std::vector<int64_t> widths;
  for_each_linear(weights, [&](Linear& l, WeightPart part) {
    if (!selected(format, part) || l.quantized()) return;
    todo.emplace_back(&l, part);
    widths.push_back(l.in_features());
  });
  for (const auto& [l, part] : todo)
    if (l->in_features() % group != 0) {
      const int fits = fitting_group(widths, group);
      fail(ErrorCode::kInvalidArgument, "--weights {}: the group size {} does not divide the {} input columns of the {} matrices{}",
           describe(format), group, l->in_features(), part_name(part),
           fits ? fmt::format(" (int{}:{} fits)", format.format.dtype == DType::kI8 ? 8 : 4, fits)
                : std::string(" (no multiple of 8 fits this model)"));
    }

  std::vector<QuantizedPart> parts;
  std::vector<RowError> totals;  // per part: sums over its matrices, in walk order
  for (const auto& [l, part] : todo) {
    const std::string name = part_name(part);
    auto it = std::find_if(parts.begin(), parts.end(), [&](const QuantizedPart& p) { return p.part == name; });
    if (it == parts.end()) {
      parts.push_back({name, describe(format), "converted at load"});
      totals.emplace_back();
      it = parts.end() - 1;
    }
    RowError& total = totals[size_t(it - parts.begin())];
    it->bytes_before += l->weight.nbytes();
    RowError matrix;
    for (const RowError& r : quantize_linear(*l, format.format)) {
      matrix.err_sq += r.err_sq;
      matrix.ref_sq += r.ref_sq;
      matrix.err_max = std::max(matrix.err_max, r.err_max);
      matrix.ref_max = std::max(matrix.ref_max, r.ref_max);
    }
    it->bytes_after += l->weight.nbytes() + l->scales.nbytes();
    ++it->matrices;
    total.err_sq += matrix.err_sq;
    total.ref_sq += matrix.ref_sq;
    if (matrix.ref_max > 0) it->max_rel_error = std::max(it->max_rel_error, matrix.err_max / matrix.ref_max);
  }
  for (GptOssExpertWeights* w : fused)
    for (Tensor* t : {&w->gate_up, &w->down, &w->gate_up_scales, &w->down_scales, &w->gate_up_bias, &w->down_bias}) *t = Tensor();
  for (size_t i = 0; i < parts.size(); ++i)
    parts[i].rms_rel_error = totals[i].ref_sq > 0 ? std::sqrt(totals[i].err_sq / totals[i].ref_sq) : 0.0;
  // Reported in the order the flag lists them, whatever order the layers hold them in.
  const auto rank = [](const QuantizedPart& p) { return p.part == "experts" ? 0 : p.part == "dense" ? 1 : 2; };
  std::stable_sort(parts.begin(), parts.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return parts;
}

std::string QuantizationReport::describe() const {
  std::string out;
  for (const QuantizedPart& p : parts)
    out += fmt::format("{}{} {} ({}) {} -> {}, relative RMS error {:.3g}%", out.empty() ? "" : "; ", p.part, p.format, p.origin,
                       format_bytes(p.bytes_before), format_bytes(p.bytes_after), 100 * p.rms_rel_error);
  return "[weights: " + out + "]";
}

}  // namespace moe::model
