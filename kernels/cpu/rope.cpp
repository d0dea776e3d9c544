#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "runtime/core/error.h"

namespace moe::cpu {
namespace {

// theta^(2i/dim) as torch computes `base ** (arange(0, dim, 2).float() / dim)`: f32 exponent,
// f32 result. Torch's vectorised powf is within 1 ulp; the correctly rounded value used here
// equals it for almost every entry (all of the yarn/llama3 cases in the tests).
float pos_freq(double theta, int i, int dim) {
  const float exponent = float(2 * i) / float(dim);
  return float(std::pow(double(float(theta)), double(exponent)));
}

std::vector<float> default_inv_freq(double theta, int dim) {
  std::vector<float> inv(static_cast<size_t>(dim / 2));
  for (int i = 0; i < dim / 2; ++i) inv[size_t(i)] = 1.0f / pos_freq(theta, i, dim);
  return inv;
}

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

RopeTable yarn(const RopeParams& p) {
  const int dim = p.rotary_dim;
  const double base = p.theta;
  const int original = p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : p.max_position_embeddings;
  double factor = p.factor;
  if (factor <= 0) factor = double(p.max_position_embeddings) / original;
  double attention = p.attention_factor;
  if (attention <= 0) {
    attention = (p.mscale != 0 && p.mscale_all_dim != 0) ? yarn_mscale(factor, p.mscale) / yarn_mscale(factor, p.mscale_all_dim)
                                                         : yarn_mscale(factor, 1.0);
  }
  const auto correction_dim = [&](double rotations) {
    return (dim * std::log(original / (rotations * 2 * std::numbers::pi))) / (2 * std::log(base));
  };
  // transformers' find_correction_range: floored and ceiled unless truncate is false, then clipped.
  double low = correction_dim(p.beta_fast), high = correction_dim(p.beta_slow);
  if (p.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;
  RopeTable t;
  t.attention_scaling = float(attention);
  t.inv_freq.resize(size_t(dim / 2));
  for (int i = 0; i < dim / 2; ++i) {
    const float freq = pos_freq(base, i, dim);
    const float extrapolation = 1.0f / freq;
    const float interpolation = 1.0f / (float(factor) * freq);
    const float ramp = std::clamp((float(i) - float(low)) / float(high - low), 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    t.inv_freq[size_t(i)] = interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  return t;
}

RopeTable llama3(const RopeParams& p) {
  RopeTable t;
  t.inv_freq = default_inv_freq(p.theta, p.rotary_dim);
  // Tensor-with-Python-scalar arithmetic in torch runs in f32 with the scalar rounded to f32.
  const double old_context = p.original_max_position_embeddings;
  const float low_wavelen = float(old_context / p.low_freq_factor), high_wavelen = float(old_context / p.high_freq_factor);
  const float factor = float(p.factor), low = float(p.low_freq_factor), span = float(p.high_freq_factor - p.low_freq_factor);
  for (float& f : t.inv_freq) {
    const float wavelen = float(2 * std::numbers::pi) / f;
    if (wavelen > low_wavelen) {
      f = f / factor;
    } else if (wavelen >= high_wavelen) {
      const float smooth = (float(old_context) / wavelen - low) / span;
      f = (1.0f - smooth) * f / factor + smooth * f;
    }
  }
  return t;
}

}  // namespace

RopeTable make_rope_table(const RopeParams& p, int64_t seq_len) {
  MOE_CHECK(p.rotary_dim > 0 && p.rotary_dim % 2 == 0, ErrorCode::kInvalidArgument,
            "rotary dimension {} must be positive and even", p.rotary_dim);
  if (p.type == "default") return {default_inv_freq(p.theta, p.rotary_dim), 1.0f};
  if (p.type == "linear") {
    RopeTable t{default_inv_freq(p.theta, p.rotary_dim), 1.0f};
    for (float& f : t.inv_freq) f /= float(p.factor);
    return t;
  }
  if (p.type == "dynamic") {
    const int64_t max_pos = p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : p.max_position_embeddings;
    double base = p.theta;
    if (seq_len > max_pos && max_pos > 0) {
      const double dim = p.rotary_dim;
      base = base * std::pow(p.factor * double(seq_len) / double(max_pos) - (p.factor - 1), dim / (dim - 2));
    }
    return {default_inv_freq(base, p.rotary_dim), 1.0f};
  }
  if (p.type == "yarn") return yarn(p);
  if (p.type == "llama3") {
    MOE_CHECK(p.original_max_position_embeddings > 0, ErrorCode::kInvalidArgument,
              "llama3 rope scaling needs original_max_position_embeddings");
    return llama3(p);
  }
  fail(ErrorCode::kUnsupported, "rope scaling type '{}' is not supported", p.type);
}

void apply_rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t rotary_dim, const int64_t* positions,
                const RopeTable& table) {
  const int64_t half = rotary_dim / 2;
  std::vector<float> cos(static_cast<size_t>(half)), sin(static_cast<size_t>(half));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = float(positions[t]) * table.inv_freq[size_t(i)];
      cos[size_t(i)] = float(std::cos(double(angle))) * table.attention_scaling;
      sin[size_t(i)] = float(std::sin(double(angle))) * table.attention_scaling;
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cos[size_t(i)] - b * sin[size_t(i)];
        v[i + half] = b * cos[size_t(i)] + a * sin[size_t(i)];
      }
    }
  }
}

}  // namespace moe::cpu
