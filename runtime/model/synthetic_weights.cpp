#include "runtime/model/synthetic_weights.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "kernels/cpu/fp8.h"
#include "runtime/core/error.h"

namespace moe::model {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t name_hash(std::string_view name) {  // FNV-1a: stable across platforms
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

SyntheticWeights::SyntheticWeights(const loading::ModelConfig& config, uint64_t seed, bool shared_expert_bytes)
    : dtype_(config.dtype == DType::kF32 ? DType::kF32 : DType::kBF16),
      fp8_(config.fp8),
      mxfp4_(config.gpt_oss.mxfp4_experts),
      seed_(seed),
      tied_(config.tie_word_embeddings),
      shared_expert_bytes_(shared_expert_bytes) {}

bool SyntheticWeights::has(std::string_view name) const {
  if (ends_with(name, ".weight_scale_inv"))  // beside an FP8 weight only
    return fp8_weight(std::string(name.substr(0, name.size() - 10)), {1, 1});
  return !(tied_ && name == "lm_head.weight");
}

bool SyntheticWeights::fp8_weight(std::string_view name, const Shape& shape) const {
  return fp8_.enabled() && shape.size() == 2 && name.substr(0, 13) == "model.layers." && ends_with(name, ".weight") &&
         !ends_with(name, "mlp.gate.weight") && name.find("norm") == std::string_view::npos;
}

Tensor SyntheticWeights::tensor(std::string_view name) const {
  fail(ErrorCode::kInternal, "synthetic weights need the expected shape of '{}'", name);
}

Tensor SyntheticWeights::tensor(std::string_view name, const Shape& shape) const {
  if (!shared_expert_bytes_ || name.find("experts.") == std::string_view::npos || shape.size() != 2) return generate(name, shape);
  // The name with its layer and expert indices masked: "model.layers.#.block_sparse_moe.experts.#.w1.weight".
  std::string kind;
  for (size_t begin = 0; begin <= name.size();) {
    const size_t end = std::min(name.find('.', begin), name.size());
    const std::string_view part = name.substr(begin, end - begin);
    const bool index = !part.empty() && std::all_of(part.begin(), part.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    kind += index ? std::string_view("#") : part;
    if (end < name.size()) kind += '.';
    begin = end + 1;
  }
  std::lock_guard lock(mutex_);
  auto it = shared_.find(kind);
  if (it == shared_.end()) it = shared_.emplace(kind, generate(kind, shape)).first;
  MOE_CHECK(it->second.shape() == shape, ErrorCode::kInternal, "synthetic expert tensors '{}' differ in shape", kind);
  return it->second;
}

Tensor SyntheticWeights::generate(std::string_view name, const Shape& shape) const {
  // Norm weights near 1, biases small, matrices uniform in +-1/sqrt(fan_in) (as nn.Linear
  // initialises), embeddings of unit scale: activations stay in a realistic range.
  const bool is_norm = name.find("norm") != std::string_view::npos && shape.size() == 1;
  const bool is_bias = ends_with(name, ".bias");
  const bool is_embedding = name == "model.embed_tokens.weight";
  const double fan_in = shape.size() == 2 ? double(shape[1]) : 1.0;
  const double scale = is_norm ? 0.1 : is_bias ? 0.02 : is_embedding ? 1.0 : 1.0 / std::sqrt(fan_in);
  uint64_t state = seed_ ^ name_hash(name);
  if (ends_with(name, ".weight_scale_inv")) {  // every block spans +-1/sqrt(fan_in) over its +-448 codes
    Tensor s = Tensor::empty(DType::kF32, shape);
    const double fan = double(shape.at(1)) * fp8_.block_cols;
    for (int64_t i = 0; i < s.numel(); ++i) s.data<float>()[i] = float(1.0 / std::sqrt(fan) / 448.0);
    return s;
  }
  // MXFP4 experts (gpt-oss's [E, rows, cols / 32, 16] blocks and [E, rows, cols / 32] scales):
  // any e2m1 nibble (|v| <= 6), each block's e8m0 scale putting the values near +-1/sqrt(fan_in).
  if (mxfp4_ && (ends_with(name, "_proj_blocks") || ends_with(name, "_proj_scales"))) {
    Tensor b = Tensor::empty(DType::kU8, shape);
    if (ends_with(name, "_scales")) {
      const double fan = 32.0 * double(shape.back());  // the row's values
      const auto code = uint8_t(127 + int(std::floor(std::log2(1.0 / (6.0 * std::sqrt(fan))))));
      std::fill(b.data<uint8_t>(), b.data<uint8_t>() + b.numel(), code);
    } else {
      for (int64_t i = 0; i < b.numel(); ++i) b.data<uint8_t>()[i] = uint8_t(splitmix64(state));
    }
    return b;
  }
  if (fp8_weight(name, shape)) {
    Tensor q = Tensor::empty(DType::kF8E4M3, shape);
    for (int64_t i = 0; i < q.numel(); ++i)
      q.data<uint8_t>()[i] = cpu::e4m3_code(float(448.0 * (double(splitmix64(state) >> 11) * 0x1.0p-53 * 2.0 - 1.0)));
    return q;
  }
  Tensor t = Tensor::empty(dtype_, shape);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double u = double(splitmix64(state) >> 11) * 0x1.0p-53 * 2.0 - 1.0;  // [-1, 1)
    const float value = float((is_norm ? 1.0 : 0.0) + scale * u);
    if (dtype_ == DType::kF32) {
      t.data<float>()[i] = value;
    } else {
      t.data<uint16_t>()[i] = f32_to_bf16(value);
    }
  }
  return t;
}

std::string SyntheticWeights::describe() const {
  return "synthetic weights (seed " + std::to_string(seed_) + (shared_expert_bytes_ ? ", experts sharing their bytes)" : ")");
}

}  // namespace moe::model
