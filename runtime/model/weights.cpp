#include "runtime/model/weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "runtime/core/error.h"
#include "runtime/core/progress.h"

namespace moe::model {
namespace {

using loading::ModelConfig;
using loading::ModelFamily;

class Loader {
 public:
  Loader(const ModelConfig& config, const loading::WeightSource& source) : config_(config), source_(source) {}

  Tensor get(const std::string& name, const Shape& shape) const {
    MOE_CHECK(source_.has(name), ErrorCode::kNotFound, "{} lacks tensor '{}'", source_.describe(), name);
    Tensor t = source_.tensor(name, shape);
    MOE_CHECK(t.shape() == shape, ErrorCode::kCorrupt, "{}: tensor '{}' has shape {}, the config implies {}",
              source_.describe(), name, shape_to_string(t.shape()), shape_to_string(shape));
    const DType d = t.dtype();
    MOE_CHECK(d == DType::kF32 || d == DType::kBF16 || d == DType::kF16, ErrorCode::kUnsupported,
              "{}: tensor '{}' has dtype {}; weights must be f32, bf16 or f16", source_.describe(), name,
              dtype_name(d));
    return t;
  }

  std::string describe() const { return source_.describe(); }
  bool has(const std::string& name) const { return source_.has(name); }

  // An MXFP4 matrix [rows, cols] as an expert store holds it (its blocks as DType::kMxfp4).
  Tensor mxfp4(const std::string& name, int64_t rows, int64_t cols) const {
    MOE_CHECK(source_.has(name), ErrorCode::kNotFound, "{} lacks tensor '{}'", source_.describe(), name);
    Tensor t = source_.tensor(name, {rows, cols});
    MOE_CHECK(t.dtype() == DType::kMxfp4 && t.shape() == Shape({rows, cols}), ErrorCode::kCorrupt,
              "{}: tensor '{}' is {} {}, not the mxfp4 [{}, {}] the config implies", source_.describe(), name,
              dtype_name(t.dtype()), shape_to_string(t.shape()), rows, cols);
    return t;
  }

  // Raw bytes (MXFP4's blocks and scales).
  Tensor bytes(const std::string& name, const Shape& shape) const {
    MOE_CHECK(source_.has(name), ErrorCode::kNotFound, "{} lacks tensor '{}'", source_.describe(), name);
    Tensor t = source_.tensor(name, shape);
    MOE_CHECK(t.shape() == shape, ErrorCode::kCorrupt, "{}: tensor '{}' has shape {}, the config implies {}",
              source_.describe(), name, shape_to_string(t.shape()), shape_to_string(shape));
    MOE_CHECK(t.dtype() == DType::kU8, ErrorCode::kUnsupported, "{}: tensor '{}' has dtype {}; MXFP4 blocks and scales are u8",
              source_.describe(), name, dtype_name(t.dtype()));
    return t;
  }

  // A weight [out, in] in f32/bf16/f16, or float8_e4m3fn with its block scales (Fp8Config).
  Linear linear(const std::string& prefix, int64_t out, int64_t in, bool bias) const {
    Linear l;
    const std::string name = prefix + ".weight", scales = prefix + ".weight_scale_inv";
    MOE_CHECK(source_.has(name), ErrorCode::kNotFound, "{} lacks tensor '{}'", source_.describe(), name);
    if (source_.tensor(name, {out, in}).dtype() == DType::kF8E4M3) {
      l = fp8_linear(name, scales, out, in);
    } else {
      l.weight = get(name, {out, in});
      MOE_CHECK(!source_.has(scales), ErrorCode::kCorrupt, "{}: tensor '{}' is given but '{}' is {}, not float8_e4m3fn",
                source_.describe(), scales, name, dtype_name(l.weight.dtype()));
    }
    if (bias) l.bias = get(prefix + ".bias", {out});
    return l;
  }

  Linear fp8_linear(const std::string& name, const std::string& scales, int64_t out, int64_t in) const {
    const loading::Fp8Config& fp8 = config_.fp8;
    const std::string src = source_.describe();
    MOE_CHECK(fp8.enabled(), ErrorCode::kUnsupported,
              "{}: tensor '{}' is float8_e4m3fn, but the config has no quantization_config with quant_method 'fp8'", src, name);
    Linear l;
    l.weight = source_.tensor(name, {out, in});
    MOE_CHECK((l.weight.shape() == Shape{out, in}), ErrorCode::kCorrupt, "{}: tensor '{}' has shape {}, the config implies {}", src,
              name, shape_to_string(l.weight.shape()), shape_to_string({out, in}));
    // AutoFP8 / compressed-tensors checkpoints (some FP8 releases) scale per tensor or channel instead.
    const std::string per_tensor = name + "_scale";
    MOE_CHECK(source_.has(scales) || !source_.has(per_tensor), ErrorCode::kUnsupported,
              "{}: tensor '{}' is float8_e4m3fn with a per-tensor or per-channel scale '{}' (AutoFP8 / compressed-tensors); "
              "only block scales (weight_scale_inv, as DeepSeek-V3 releases them) are supported",
              src, name, per_tensor);
    MOE_CHECK(source_.has(scales), ErrorCode::kNotFound, "{} lacks tensor '{}' (the block scales of the float8_e4m3fn '{}')", src,
              scales, name);
    const Shape grid{(out + fp8.block_rows - 1) / fp8.block_rows, (in + fp8.block_cols - 1) / fp8.block_cols};
    l.block_scales = source_.tensor(scales, grid);
    MOE_CHECK(l.block_scales.shape() == grid, ErrorCode::kCorrupt,
              "{}: tensor '{}' has shape {}; blocks of {} x {} over the {} weight imply {}", src, scales,
              shape_to_string(l.block_scales.shape()), fp8.block_rows, fp8.block_cols, shape_to_string({out, in}),
              shape_to_string(grid));
    MOE_CHECK(l.block_scales.dtype() == DType::kF32, ErrorCode::kUnsupported, "{}: tensor '{}' has dtype {}; FP8 block scales are f32",
              src, scales, dtype_name(l.block_scales.dtype()));
    const float* s = l.block_scales.data<float>();
    for (int64_t i = 0; i < l.block_scales.numel(); ++i)
      MOE_CHECK(std::isfinite(s[i]), ErrorCode::kCorrupt, "{}: tensor '{}' holds a non-finite scale ({}) at block [{}, {}]", src,
                scales, s[i], i / grid[1], i % grid[1]);
    l.block_rows = fp8.block_rows;
    l.block_cols = fp8.block_cols;
    return l;
  }

  GatedMlp mlp(const std::string& gate, const std::string& up, const std::string& down, int64_t width) const {
    const int64_t h = config_.hidden_size;
    return {linear(gate, width, h, false), linear(up, width, h, false), linear(down, h, width, false)};
  }

 private:
  const ModelConfig& config_;
  const loading::WeightSource& source_;
};

void load_attention(const Loader& ld, const ModelConfig& c, const std::string& p, AttentionWeights* a) {
  const int64_t h = c.hidden_size, q_out = int64_t{c.num_heads} * c.head_dim, kv_out = int64_t{c.num_kv_heads} * c.head_dim;
  a->q = ld.linear(p + "q_proj", q_out, h, c.attention_bias);
  a->k = ld.linear(p + "k_proj", kv_out, h, c.attention_bias);
  a->v = ld.linear(p + "v_proj", kv_out, h, c.attention_bias);
  a->o = ld.linear(p + "o_proj", h, q_out, c.output_bias);
  if (c.attention_sinks()) a->sinks = ld.get(p + "sinks", {c.num_heads});
  if (c.qk_norm == loading::QkNorm::kPerHead) {
    a->q_norm = ld.get(p + "q_norm.weight", {c.head_dim});
    a->k_norm = ld.get(p + "k_norm.weight", {c.head_dim});
  } else if (c.qk_norm == loading::QkNorm::kFull) {
    a->q_norm = ld.get(p + "q_norm.weight", {q_out});
    a->k_norm = ld.get(p + "k_norm.weight", {kv_out});
  }
}

void load_gpt_oss_experts(const Loader& ld, const ModelConfig& c, int layer, const std::string& p, GptOssExpertWeights* x) {
  const int64_t E = c.num_experts, h = c.hidden_size, I = c.moe_intermediate_size;
  x->swiglu_alpha = float(c.gpt_oss.swiglu_alpha);
  x->swiglu_limit = float(c.gpt_oss.swiglu_limit);
  const auto f32 = [](Tensor t) { return t.dtype() == DType::kF32 ? t : t.to_f32(); };
  const bool mxfp4 = c.gpt_oss.mxfp4_experts;
  if (!ld.has(p + (mxfp4 ? "gate_up_proj_blocks" : "gate_up_proj")) && (!mxfp4 || (h % 32 == 0 && I % 32 == 0)) &&
      ld.has(expert_tensor_names(c, layer, 0).up)) {  // an expert store: each expert cut as moe pack cut it (bf16 transposed)
    for (int e = 0; e < E; ++e) {
      const ExpertTensorNames n = expert_tensor_names(c, layer, e);
      GatedMlp g;
      g.up.weight = mxfp4 ? ld.mxfp4(n.up, 2 * I, h) : ld.get(n.up, {2 * I, h});
      if (mxfp4) g.up.exponents = ld.bytes(n.up_scales, {2 * I, h / 32});
      g.up.bias = f32(ld.get(n.up_bias, {2 * I}));
      g.down.weight = mxfp4 ? ld.mxfp4(n.down, h, I) : ld.get(n.down, {h, I});
      if (mxfp4) g.down.exponents = ld.bytes(n.down_scales, {h, I / 32});
      g.down.bias = f32(ld.get(n.down_bias, {h}));
      g.swiglu_alpha = x->swiglu_alpha;
      g.swiglu_limit = x->swiglu_limit;
      x->cut.push_back(std::move(g));
    }
    return;
  }
  if (mxfp4) {
    constexpr int64_t kBlock = 32;
    MOE_CHECK(h % kBlock == 0 && I % kBlock == 0, ErrorCode::kCorrupt,
              "{}: MXFP4 experts need hidden_size ({}) and intermediate_size ({}) to be multiples of 32", ld.describe(), h, I);
    x->gate_up = ld.bytes(p + "gate_up_proj_blocks", {E, 2 * I, h / kBlock, 16});
    x->gate_up_scales = ld.bytes(p + "gate_up_proj_scales", {E, 2 * I, h / kBlock});
    x->down = ld.bytes(p + "down_proj_blocks", {E, h, I / kBlock, 16});
    x->down_scales = ld.bytes(p + "down_proj_scales", {E, h, I / kBlock});
  } else {
    x->gate_up = loading::transposed_copy(ld.get(p + "gate_up_proj", {E, h, 2 * I}));
    x->down = loading::transposed_copy(ld.get(p + "down_proj", {E, I, h}));
  }
  x->gate_up_bias = ld.get(p + "gate_up_proj_bias", {E, 2 * I});
  x->down_bias = ld.get(p + "down_proj_bias", {E, h});
}

void load_mla(const Loader& ld, const ModelConfig& c, const std::string& p, MlaWeights* a) {
  const loading::MlaConfig& m = c.mla;
  const int64_t h = c.hidden_size, heads = c.num_heads, q_out = heads * m.qk_head_dim();
  if (m.q_lora_rank > 0) {
    a->q_a = ld.linear(p + "q_a_proj", m.q_lora_rank, h, c.attention_bias);
    a->q_a_norm = ld.get(p + "q_a_layernorm.weight", {m.q_lora_rank});
    a->q_b = ld.linear(p + "q_b_proj", q_out, m.q_lora_rank, false);
  } else {
    a->q = ld.linear(p + "q_proj", q_out, h, false);
  }
  a->kv_a = ld.linear(p + "kv_a_proj_with_mqa", m.kv_lora_rank + m.qk_rope_head_dim, h, c.attention_bias);
  a->kv_a_norm = ld.get(p + "kv_a_layernorm.weight", {m.kv_lora_rank});
  a->kv_b = ld.linear(p + "kv_b_proj", heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, false);
  a->o = ld.linear(p + "o_proj", h, heads * m.v_head_dim, c.output_bias);
}

// MoE++ in the released layout: router wg (or wg.0 and wg.2), gate_map, FFN experts with gate
// and up fused in up_proj [2I, H] (gate first), constant experts after them.
void load_moe_plus_plus(const Loader& ld, const ModelConfig& c, int layer, const LoadOptions& options, MoeWeights* m) {
  const std::string p = fmt::format("model.layers.{}.mlp.moe.", layer);
  const int64_t h = c.hidden_size, E = c.router_outputs(), I = c.moe_intermediate_size;
  if (c.moe_plus_plus.two_layer_gate) {
    m->router = ld.linear(p + "gate.wg.0", 8 * E, h, false);
    m->router2 = ld.linear(p + "gate.wg.2", E, 8 * E, false);
  } else {
    m->router = ld.linear(p + "gate.wg", E, h, false);
  }
  m->gate_map = ld.linear(p + "gate.gate_map", E, E, false);
  if (options.load_routed_experts) {
    for (int e = 0; e < c.num_experts; ++e) {
      const std::string q = fmt::format("{}experts.experts.{}.", p, e);
      GatedMlp expert;
      if (const ExpertTensorNames n = expert_tensor_names(c, layer, e); !ld.has(q + "up_proj.weight") && ld.has(n.gate)) {
        expert.gate.weight = ld.get(n.gate, {I, h});  // an expert store: the halves as moe pack cut them
        expert.up.weight = ld.get(n.up, {I, h});
      } else {
        const Tensor fused = ld.get(q + "up_proj.weight", {2 * I, h});
        expert.gate.weight = fused.slice_rows(0, I);
        expert.up.weight = fused.slice_rows(I, 2 * I);
      }
      expert.down = ld.linear(q + "down_proj", h, I, false);
      m->experts.push_back(std::move(expert));
    }
  }
  for (int k = 0; k < c.moe_plus_plus.constant_experts; ++k) {
    const std::string q = fmt::format("{}experts.experts.{}.", p, c.num_experts + k);
    m->constants.push_back({ld.get(q + "constant", {h}), ld.linear(q + "wg", 2, h, false)});
  }
}

void load_moe(const Loader& ld, const ModelConfig& c, int layer, const LoadOptions& options, MoeWeights* m) {
  if (c.family == ModelFamily::kMoePlusPlus) return load_moe_plus_plus(ld, c, layer, options, m);
  const std::string p = fmt::format("model.layers.{}.", layer);
  const std::string block = c.family == ModelFamily::kMixtral ? p + "block_sparse_moe." : p + "mlp.";
  if (c.family == ModelFamily::kGptOss) {
    m->router = ld.linear(block + "router", c.num_experts, c.hidden_size, true);
    if (options.load_routed_experts) load_gpt_oss_experts(ld, c, layer, block + "experts.", &m->gpt_oss);
    return;
  }
  m->router = ld.linear(block + "gate", c.num_experts, c.hidden_size, false);
  if (c.family == ModelFamily::kDeepseekV3 || c.family == ModelFamily::kGlm4Moe)
    m->router_bias = ld.get(block + "gate.e_score_correction_bias", {c.num_experts});
  if (options.load_routed_experts) {
    m->experts.reserve(static_cast<size_t>(c.num_experts));
    for (int e = 0; e < c.num_experts; ++e) {
      const ExpertTensorNames n = expert_tensor_names(c, layer, e);
      const auto strip = [](const std::string& s) { return s.substr(0, s.size() - 7); };  // ".weight"
      m->experts.push_back(ld.mlp(strip(n.gate), strip(n.up), strip(n.down), c.moe_intermediate_size));
    }
  }
  if (c.shared_expert_intermediate_size > 0) {
    const bool deepseek = c.family == ModelFamily::kDeepseekMoe || c.family == ModelFamily::kDeepseekV2 ||
                          c.family == ModelFamily::kDeepseekV3 || c.family == ModelFamily::kGlm4Moe;
    const std::string s = deepseek ? block + "shared_experts." : block + "shared_expert.";
    m->shared = ld.mlp(s + "gate_proj", s + "up_proj", s + "down_proj", c.shared_expert_intermediate_size);
    if (c.shared_expert_gated) m->shared_gate = ld.linear(block + "shared_expert_gate", 1, c.hidden_size, false);
  }
}

// Row e of a [E, n] bias in f32.
Tensor bias_row(const Tensor& bias, int64_t e) { return bias.slice_rows(e, e + 1).to_f32().reshape({bias.dim(1)}); }

// Expert e's [rows, cols] matrix of a [E, rows, cols] matrix or of [E, rows, cols / 32, 16] MXFP4
// blocks with their [E, rows, cols / 32] exponents.
Linear gpt_oss_matrix(const Tensor& data, const Tensor& exponents, int64_t e, int64_t rows, int64_t cols) {
  Linear l;
  if (!exponents.defined()) {
    l.weight = data.reshape({data.dim(0) * rows, cols}).slice_rows(e * rows, (e + 1) * rows);
    return l;
  }
  l.weight = Tensor::view(data.data<uint8_t>() + e * rows * (cols / 2), DType::kMxfp4, {rows, cols}, nullptr);
  l.exponents = exponents.reshape({exponents.dim(0) * rows, cols / 32}).slice_rows(e * rows, (e + 1) * rows);
  return l;
}

}  // namespace

GatedMlp gpt_oss_expert(const GptOssExpertWeights& w, int64_t e) {
  MOE_CHECK(w.defined() && e >= 0 && e < w.experts(), ErrorCode::kInternal, "no gpt-oss expert {}", e);
  if (!w.cut.empty()) return w.cut[size_t(e)];
  const int64_t two_i = w.gate_up_bias.dim(1), h = w.down_bias.dim(1);
  GatedMlp x;
  x.up = gpt_oss_matrix(w.gate_up, w.gate_up_scales, e, two_i, h);
  x.down = gpt_oss_matrix(w.down, w.down_scales, e, h, two_i / 2);
  x.up.bias = bias_row(w.gate_up_bias, e);
  x.down.bias = bias_row(w.down_bias, e);
  x.swiglu_alpha = w.swiglu_alpha;
  x.swiglu_limit = w.swiglu_limit;
  return x;
}

ExpertTensorNames expert_tensor_names(const ModelConfig& c, int layer, int expert) {
  const int64_t I = c.moe_intermediate_size, first = expert * I;
  if (c.family == ModelFamily::kMoePlusPlus) {  // gate then up in the rows of one up_proj
    const std::string p = fmt::format("model.layers.{}.mlp.moe.experts.experts.{}.", layer, expert);
    return {loading::row_slice_name(p + "up_proj.weight", 0, I), loading::row_slice_name(p + "up_proj.weight", I, 2 * I),
            p + "down_proj.weight"};
  }
  if (c.family == ModelFamily::kDsMoe) {  // rows of c_fc (and of its bias), columns of c_proj
    const std::string p = fmt::format("transformer.h.{}.mlp.", layer);
    return {"", loading::row_slice_name(p + "c_fc.weight", first, first + I),
            loading::column_slice_name(p + "c_proj.weight", first, first + I), loading::row_slice_name(p + "c_fc.bias", first, first + I)};
  }
  if (c.family == ModelFamily::kGptOss) {  // expert e of the fused tensors: [e:e+1] of each (bf16's x @ W transposed)
    const std::string p = fmt::format("model.layers.{}.mlp.experts.", layer);
    const auto one = [&](const char* name) { return loading::row_slice_name(p + name, expert, expert + 1); };
    ExpertTensorNames n;
    n.up_bias = one("gate_up_proj_bias");
    n.down_bias = one("down_proj_bias");
    if (!c.gpt_oss.mxfp4_experts) {
      n.up = loading::transposed_slice_name(p + "gate_up_proj", expert, expert + 1);
      n.down = loading::transposed_slice_name(p + "down_proj", expert, expert + 1);
      return n;
    }
    n.up = one("gate_up_proj_blocks");
    n.up_scales = one("gate_up_proj_scales");
    n.down = one("down_proj_blocks");
    n.down_scales = one("down_proj_scales");
    return n;
  }
  if (c.family == ModelFamily::kMixtral) {
    const std::string p = fmt::format("model.layers.{}.block_sparse_moe.experts.{}.", layer, expert);
    return {p + "w1.weight", p + "w3.weight", p + "w2.weight"};
  }
  const std::string p = fmt::format("model.layers.{}.mlp.experts.{}.", layer, expert);
  return {p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"};
}

namespace {

// DS-MoE's MLP expert e as its own GeLU MLP: c_fc's rows e*I.. (a view) with their bias in f32,
// and c_proj's columns e*I.. copied into a contiguous [H, I] matrix of the stored dtype.
GatedMlp ds_moe_expert(const Linear& fc, const Linear& proj, int e, int64_t I) {
  GatedMlp expert;
  expert.up.weight = fc.weight.slice_rows(e * I, (e + 1) * I);
  const Tensor bias = fc.bias.to_f32();
  expert.up.bias = Tensor::empty(DType::kF32, {I});
  std::copy_n(bias.data<float>() + e * I, I, expert.up.bias.data<float>());
  const int64_t h = proj.weight.dim(0), cols = proj.weight.dim(1);
  const size_t element = dtype_bytes(proj.weight.dtype(), 1);
  expert.down.weight = Tensor::empty(proj.weight.dtype(), {h, I});
  const auto* src = proj.weight.data<std::byte>();
  auto* dst = expert.down.weight.data<std::byte>();
  for (int64_t r = 0; r < h; ++r)
    std::memcpy(dst + size_t(r * I) * element, src + size_t(r * cols + e * I) * element, size_t(I) * element);
  return expert;
}

// The same expert from a store, which holds the slices ds_moe_expert makes (its bias in f32).
GatedMlp ds_moe_stored_expert(const Loader& ld, const ExpertTensorNames& n, int64_t h, int64_t I) {
  GatedMlp expert;
  expert.up.weight = ld.get(n.up, {I, h});
  expert.up.bias = ld.get(n.up_bias, {I});
  if (expert.up.bias.dtype() != DType::kF32) expert.up.bias = expert.up.bias.to_f32();
  expert.down.weight = ld.get(n.down, {h, I});
  return expert;
}

ModelWeights load_ds_moe(const ModelConfig& c, const loading::WeightSource& source, const LoadOptions& options) {
  const Loader ld(c, source);
  ModelWeights w;
  const int64_t h = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size;
  const int64_t qkv = h + 2 * int64_t{c.num_kv_heads} * c.head_dim;
  w.embed_tokens = ld.get("transformer.wte.weight", {c.vocab_size, h});
  if (c.ds_moe.learned_positions) w.position_embeddings = ld.get("transformer.wpe.weight", {c.max_position_embeddings, h});
  ProgressBar progress("loading", static_cast<uint64_t>(c.num_layers));
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    LayerWeights& layer = w.layers[static_cast<size_t>(l)];
    const std::string p = fmt::format("transformer.h.{}.", l);
    layer.sparse = true;
    layer.input_norm = ld.get(p + "ln_1.weight", {h});
    layer.ds.ln_1_bias = ld.get(p + "ln_1.bias", {h});
    layer.post_attention_norm = ld.get(p + "ln_2.weight", {h});
    layer.ds.ln_2_bias = ld.get(p + "ln_2.bias", {h});
    layer.ds.c_attn = ld.linear(p + "attn.c_attn", qkv, h, true);
    layer.ds.attn_proj = ld.linear(p + "attn.c_proj", h, h, true);
    layer.ds.attn_gate = ld.linear(p + "attn.gate", c.ds_moe.attention_experts, h, false);
    layer.moe.router = ld.linear(p + "mlp.gate", E, h, false);
    if (ld.has(p + "mlp.c_fc.weight") || !ld.has(expert_tensor_names(c, l, 0).up)) {  // a folder: the fused tensors
      const Linear fc = ld.linear(p + "mlp.c_fc", E * I, h, true);
      const Linear proj = ld.linear(p + "mlp.c_proj", h, E * I, true);
      layer.ds.mlp_proj_bias = proj.bias;
      if (options.load_routed_experts)
        for (int e = 0; e < E; ++e) layer.moe.experts.push_back(ds_moe_expert(fc, proj, e, I));
    } else {  // an expert store: each expert's slices as moe pack cut them; c_proj's bias stays whole
      layer.ds.mlp_proj_bias = ld.get(p + "mlp.c_proj.bias", {h});
      if (options.load_routed_experts)
        for (int e = 0; e < E; ++e) layer.moe.experts.push_back(ds_moe_stored_expert(ld, expert_tensor_names(c, l, e), h, I));
    }
    progress.advance();
  }
  progress.finish();
  w.final_norm = ld.get("transformer.ln_f.weight", {h});
  w.final_norm_bias = ld.get("transformer.ln_f.bias", {h});
  if (c.tie_word_embeddings) {
    w.lm_head.weight = w.embed_tokens;
  } else {
    w.lm_head.weight = ld.get("lm_head.weight", {c.vocab_size, h});
  }
  return w;
}

}  // namespace

ModelWeights load_weights(const ModelConfig& c, const loading::WeightSource& source, const LoadOptions& options) {
  if (c.family == ModelFamily::kDsMoe) return load_ds_moe(c, source, options);
  const Loader ld(c, source);
  ModelWeights w;
  const int64_t h = c.hidden_size;
  w.embed_tokens = ld.get("model.embed_tokens.weight", {c.vocab_size, h});
  ProgressBar progress("loading", static_cast<uint64_t>(c.num_layers));
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    LayerWeights& layer = w.layers[static_cast<size_t>(l)];
    const std::string p = fmt::format("model.layers.{}.", l);
    layer.input_norm = ld.get(p + "input_layernorm.weight", {h});
    if (c.family == ModelFamily::kBam) {  // one norm feeds both branches of the parallel block
      const int64_t q_out = int64_t{c.num_heads} * c.head_dim, kv_out = int64_t{c.num_kv_heads} * c.head_dim;
      BamAttentionWeights& b = layer.bam;
      b.router = ld.linear(p + "self_attn.router", c.bam.attention_experts, h, false);
      if (!c.bam.expert_kv) {
        b.shared_k = ld.linear(p + "self_attn.k_proj", kv_out, h, false);
        b.shared_v = ld.linear(p + "self_attn.v_proj", kv_out, h, false);
      }
      for (int e = 0; e < c.bam.attention_experts; ++e) {
        const std::string q = fmt::format("{}self_attn.experts.{}.", p, e);
        AttentionWeights a;
        a.q = ld.linear(q + "q_proj", q_out, h, false);
        a.o = ld.linear(q + "o_proj", h, q_out, false);
        if (c.bam.expert_kv) {
          a.k = ld.linear(q + "k_proj", kv_out, h, false);
          a.v = ld.linear(q + "v_proj", kv_out, h, false);
        }
        b.experts.push_back(std::move(a));
      }
    } else {
      layer.post_attention_norm = ld.get(p + "post_attention_layernorm.weight", {h});
      if (c.is_mla()) load_mla(ld, c, p + "self_attn.", &layer.mla);
      else load_attention(ld, c, p + "self_attn.", &layer.attention);
    }
    layer.sparse = c.is_sparse(l);
    if (layer.sparse) {
      load_moe(ld, c, l, options, &layer.moe);
    } else {
      layer.dense_mlp = ld.mlp(p + "mlp.gate_proj", p + "mlp.up_proj", p + "mlp.down_proj", c.intermediate_size);
    }
    progress.advance();
  }
  progress.finish();
  w.final_norm = ld.get("model.norm.weight", {h});
  if (c.tie_word_embeddings || !source.has("lm_head.weight")) {
    MOE_CHECK(c.tie_word_embeddings, ErrorCode::kNotFound, "{} lacks tensor 'lm_head.weight'", source.describe());
    w.lm_head.weight = w.embed_tokens;
  } else {
    w.lm_head.weight = ld.get("lm_head.weight", {c.vocab_size, h});
  }
  return w;
}

WeightBytes weight_bytes(const ModelConfig& c) {
  const uint64_t elem = static_cast<uint64_t>(dtype_bytes(c.dtype, 1));
  const uint64_t h = static_cast<uint64_t>(c.hidden_size);
  const uint64_t q_out = uint64_t(c.num_heads) * uint64_t(c.head_dim), kv_out = uint64_t(c.num_kv_heads) * uint64_t(c.head_dim);
  WeightBytes b;
  b.per_expert = 3 * h * uint64_t(c.moe_intermediate_size) * elem;
  if (c.fp8.enabled()) {  // FP8 experts: a byte a value and an f32 scale a block (the projections below likewise)
    const auto blocks = [](uint64_t n, int block) { return (n + uint64_t(block) - 1) / uint64_t(block); };
    const uint64_t I = uint64_t(c.moe_intermediate_size), br = uint64_t(c.fp8.block_rows), bc = uint64_t(c.fp8.block_cols);
    b.per_expert = 3 * h * I + 4 * (2 * blocks(I, int(br)) * blocks(h, int(bc)) + blocks(h, int(br)) * blocks(I, int(bc)));
  }
  if (c.family == ModelFamily::kDsMoe) {  // GeLU experts: c_fc rows + their bias (f32), c_proj columns
    const uint64_t I = uint64_t(c.moe_intermediate_size), E = uint64_t(c.num_experts);
    b.per_expert = 2 * h * I * elem + I * sizeof(float);
    b.all_experts = uint64_t(c.num_layers) * E * b.per_expert;
    const uint64_t attention =
        h * (h + 2 * kv_out) + (h + 2 * kv_out) + h * h + h + uint64_t(c.ds_moe.attention_experts) * h;
    b.resident = (uint64_t(c.vocab_size) * h * (c.tie_word_embeddings ? 1 : 2) +
                  (c.ds_moe.learned_positions ? uint64_t(c.max_position_embeddings) * h : 0) + 2 * h +
                  uint64_t(c.num_layers) * (attention + 4 * h + E * h + h)) * elem;
    return b;
  }
  if (c.family == ModelFamily::kGptOss) {  // fused biased experts, MXFP4 as released or the stored dtype
    const uint64_t I = uint64_t(c.moe_intermediate_size), matrix = 3 * h * I;
    b.per_expert = (c.gpt_oss.mxfp4_experts ? matrix / 2 + matrix / 32 : matrix * elem) + (2 * I + h) * elem;
    b.all_experts = uint64_t(c.num_layers) * uint64_t(c.num_experts) * b.per_expert;
    const uint64_t attention = 2 * h * q_out + 2 * h * kv_out + q_out + 2 * kv_out + h + uint64_t(c.num_heads);
    b.resident = (uint64_t(c.vocab_size) * h * (c.tie_word_embeddings ? 1 : 2) + h +
                  uint64_t(c.num_layers) * (2 * h + attention + uint64_t(c.num_experts) * (h + 1))) * elem;
    return b;
  }
  // Projections (FP8 in an FP8 checkpoint) apart from the rest (embeddings, norms, routers).
  uint64_t resident = uint64_t(c.vocab_size) * h * (c.tie_word_embeddings ? 1 : 2) + h, projections = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    if (c.is_mla()) {
      const loading::MlaConfig& m = c.mla;
      const uint64_t heads = uint64_t(c.num_heads);
      resident += 2 * h + uint64_t(m.kv_lora_rank) + (m.q_lora_rank > 0 ? uint64_t(m.q_lora_rank) : 0);
      projections += h * uint64_t(m.kv_lora_rank + m.qk_rope_head_dim) +
                     uint64_t(m.kv_lora_rank) * heads * uint64_t(m.qk_nope_head_dim + m.v_head_dim) + heads * uint64_t(m.v_head_dim) * h;
      projections += m.q_lora_rank > 0 ? uint64_t(m.q_lora_rank) * (h + heads * uint64_t(m.qk_head_dim()))
                                       : h * heads * uint64_t(m.qk_head_dim());
    } else if (c.family == ModelFamily::kBam) {  // one norm; A attention experts (own or shared k/v)
      const uint64_t A = uint64_t(c.bam.attention_experts);
      resident += h + A * h;
      projections += A * 2 * h * q_out + (c.bam.expert_kv ? A : 1) * 2 * h * kv_out;
    } else {
      resident += 2 * h;
      projections += 2 * h * q_out + 2 * h * kv_out;
    }
    if (c.is_sparse(l)) {
      resident += uint64_t(c.num_experts) * h;
      projections += 3 * h * uint64_t(c.shared_expert_intermediate_size);
      if (c.family == ModelFamily::kDeepseekV3 || c.family == ModelFamily::kGlm4Moe)
        resident += uint64_t(c.num_experts);  // e_score_correction_bias
      b.all_experts += uint64_t(c.num_experts) * b.per_expert;
    } else {
      projections += 3 * h * uint64_t(c.intermediate_size);
    }
  }
  // FP8: a byte a weight and an f32 scale a block (counted per block of weights, not per matrix).
  const uint64_t block = c.fp8.enabled() ? uint64_t(c.fp8.block_rows) * uint64_t(c.fp8.block_cols) : 1;
  b.resident = resident * elem + (c.fp8.enabled() ? projections + 4 * ((projections + block - 1) / block) : projections * elem);
  return b;
}

}  // namespace moe::model
