#include "runtime/model/transformer.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/combine.h"
#include "kernels/cpu/norm.h"
#include "runtime/core/error.h"
#include "runtime/model/bam.h"
#include "runtime/model/ds_moe.h"
#include "runtime/model/gpt_oss.h"
#include "runtime/model/mla.h"
#include "runtime/model/moe_plus_plus.h"
#include "runtime/model/resident_experts.h"
#include "runtime/model/weight_matrix.h"

namespace moe::model {

using loading::ModelFamily;
using loading::QkNorm;

namespace {

std::vector<float> floats_of(const Tensor& t) {
  if (!t.defined()) return {};
  const Tensor f = t.to_f32();
  return {f.data<float>(), f.data<float>() + f.numel()};
}

const float* or_null(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

cpu::RopeParams rope_params_of(const loading::ModelConfig& c) {
  cpu::RopeParams p;
  p.rotary_dim = c.is_mla() ? c.mla.qk_rope_head_dim : static_cast<int>(std::lround(c.head_dim * c.rope.partial_rotary_factor));
  p.theta = c.rope.theta;
  p.type = c.rope.type;
  p.factor = c.rope.factor;
  p.original_max_position_embeddings = c.rope.original_max_position_embeddings;
  p.max_position_embeddings = c.max_position_embeddings;
  p.low_freq_factor = c.rope.low_freq_factor;
  p.high_freq_factor = c.rope.high_freq_factor;
  p.beta_fast = c.rope.beta_fast;
  p.beta_slow = c.rope.beta_slow;
  p.truncate = c.rope.truncate;
  p.attention_factor = c.rope.attention_factor;
  p.mscale = c.rope.mscale;
  p.mscale_all_dim = c.rope.mscale_all_dim;
  return p;
}

}  // namespace

// A layer's weights in the form the kernels take: matrices over the stored bytes, small
// vectors (norms, biases) converted to f32 once.
struct Transformer::Layer {
  std::vector<float> input_norm, post_attention_norm;
  cpu::WeightMatrix q, k, v, o;
  std::vector<float> q_bias, k_bias, v_bias, o_bias, q_norm, k_norm;
  std::vector<float> sinks;  // gpt-oss: [heads]
  bool sparse = false;
  GatedMlpMatrices dense_mlp;
  cpu::WeightMatrix router;
  std::vector<float> router_bias;  // DeepSeek-V3's e_score_correction_bias
  std::vector<float> router_logit_bias;  // gpt-oss: the router's own bias, added to its logits
  bool has_shared = false;
  GatedMlpMatrices shared;
  bool shared_gated = false;
  cpu::WeightMatrix shared_gate;
  std::unique_ptr<MoePlusPlusLayer> moe_plus_plus;
  std::unique_ptr<DsMoeLayer> ds;
  std::unique_ptr<BamAttentionLayer> bam;
  std::unique_ptr<MlaLayer> mla;
};

Transformer::Transformer(loading::ModelConfig config, ModelWeights weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
  layers_.resize(weights_.layers.size());
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const LayerWeights& w = weights_.layers[l];
    Layer& layer = layers_[l];
    layer.input_norm = floats_of(w.input_norm);
    layer.post_attention_norm = floats_of(w.post_attention_norm);
    if (config_.family == loading::ModelFamily::kDsMoe) {
      // q, k, v are row blocks of the fused c_attn; every projection has a bias.
      const int64_t h = config_.hidden_size, kv = int64_t{config_.num_kv_heads} * config_.head_dim;
      const Linear& qkv = w.ds.c_attn;
      layer.q = matrix_of(weight_rows(qkv, 0, h));
      layer.k = matrix_of(weight_rows(qkv, h, h + kv));
      layer.v = matrix_of(weight_rows(qkv, h + kv, h + 2 * kv));
      const std::vector<float> bias = floats_of(qkv.bias);
      layer.q_bias.assign(bias.begin(), bias.begin() + h);
      layer.k_bias.assign(bias.begin() + h, bias.begin() + h + kv);
      layer.v_bias.assign(bias.begin() + h + kv, bias.end());
      layer.o = matrix_of(w.ds.attn_proj);
      layer.o_bias = floats_of(w.ds.attn_proj.bias);
      layer.sparse = true;
      layer.router = cpu::weight_matrix(w.moe.router.weight);
      layer.ds = std::make_unique<DsMoeLayer>(ds_moe_layer(w));
      continue;
    }
    if (config_.family == loading::ModelFamily::kBam) {
      layer.bam = std::make_unique<BamAttentionLayer>(bam_attention_layer(w.bam, config_));
    } else if (config_.is_mla()) {
      layer.mla = std::make_unique<MlaLayer>(mla_layer(w.mla, config_));
    } else {
      const AttentionWeights& a = w.attention;
      layer.q = matrix_of(a.q);
      layer.k = matrix_of(a.k);
      layer.v = matrix_of(a.v);
      layer.o = matrix_of(a.o);
      layer.q_bias = floats_of(a.q.bias);
      layer.k_bias = floats_of(a.k.bias);
      layer.v_bias = floats_of(a.v.bias);
      layer.o_bias = floats_of(a.o.bias);
      layer.q_norm = floats_of(a.q_norm);
      layer.k_norm = floats_of(a.k_norm);
      layer.sinks = floats_of(a.sinks);
    }
    layer.sparse = w.sparse;
    if (w.sparse) {
      layer.router = matrix_of(w.moe.router);  // an FP8 router (none released) with its block scales
      layer.router_bias = floats_of(w.moe.router_bias);
      layer.router_logit_bias = floats_of(w.moe.router.bias);
      if (config_.family == loading::ModelFamily::kMoePlusPlus)
        layer.moe_plus_plus = std::make_unique<MoePlusPlusLayer>(moe_plus_plus_layer(w.moe, config_));
      layer.has_shared = w.moe.has_shared();
      if (layer.has_shared) layer.shared = matrices_of(w.moe.shared, config_.activation);
      layer.shared_gated = w.moe.shared_gate.weight.defined();
      if (layer.shared_gated) layer.shared_gate = cpu::weight_matrix(w.moe.shared_gate.weight);
    } else {
      layer.dense_mlp = matrices_of(w.dense_mlp, config_.activation);
    }
  }
  final_norm_ = floats_of(weights_.final_norm);
  final_norm_bias_ = floats_of(weights_.final_norm_bias);
  lm_head_ = matrix_of(weights_.lm_head);
  rope_params_ = rope_params_of(config_);
  bool experts_resident = false;
  for (const LayerWeights& w : weights_.layers) experts_resident |= !w.moe.experts.empty() || w.moe.gpt_oss.defined();
  if (experts_resident && config_.family == ModelFamily::kGptOss)
    resident_experts_ = std::make_unique<GptOssExpertRunner>(weights_, config_);
  else if (experts_resident)
    resident_experts_ = std::make_unique<ResidentExperts>(weights_, config_.activation);
  experts_ = resident_experts_.get();
  set_routing_mode(RoutingMode{});  // the model's own routing
}

Transformer::~Transformer() = default;

void Transformer::set_routing_mode(const RoutingMode& mode) {
  MOE_CHECK(mode.kind == RoutingMode::Kind::kDefault || config_.family != loading::ModelFamily::kMoePlusPlus,
            ErrorCode::kUnsupported, "MoE++ keeps its own routing (top-2 over FFN and zero-computation experts)");
  MOE_CHECK(mode.kind == RoutingMode::Kind::kDefault || config_.family != loading::ModelFamily::kGptOss,
            ErrorCode::kUnsupported, "gpt_oss keeps its own routing (top-k softmax over the chosen logits); --routing {} is not supported",
            mode.describe());
  MOE_CHECK(mode.kind == RoutingMode::Kind::kDefault || !grouped_routing(), ErrorCode::kUnsupported,
            "{} keeps its own routing (grouped top-k with routed_scaling_factor); --routing {} is not supported",
            loading::family_name(config_.family), mode.describe());
  MOE_CHECK(mode.kind != RoutingMode::Kind::kTopK || mode.k <= config_.num_experts, ErrorCode::kInvalidArgument,
            "topk:{} is impossible with {} experts", mode.k, config_.num_experts);
  routing_mode_ = mode;
  const bool model_default = mode.kind == RoutingMode::Kind::kDefault && config_.family == loading::ModelFamily::kDsMoe;
  effective_routing_ = model_default ? parse_routing_mode(config_.ds_moe.default_routing) : mode;
}

void Transformer::set_attention_backend(AttentionBackend* backend) {
  MOE_CHECK(backend == nullptr || !config_.attention_sinks(), ErrorCode::kUnsupported,
            "gpt-oss's attention sinks run on the CPU attention kernel only; --backend cuda is not supported for it yet");
  attention_backend_ = backend;
}

void Transformer::set_expert_runner(ExpertRunner* runner) {
  // gpt-oss's experts (fused, biased, clamped SwiGLU, MXFP4) are not MoeWeights::experts: the
  // offloading executor cuts them (model::gpt_oss_expert); ResidentExperts would find none.
  MOE_CHECK(runner == nullptr || runner == resident_experts_.get() || config_.family != ModelFamily::kGptOss ||
                dynamic_cast<ResidentExperts*>(runner) == nullptr,
            ErrorCode::kUnsupported, "gpt-oss's experts are not plain SwiGLU experts: ResidentExperts cannot run them");
  // Other runners compute gated experts with config().activation (the offloading executor's
  // views carry it; its GPU devices refuse what their kernels do not compute).
  experts_ = runner ? runner : resident_experts_.get();
}

KvCache Transformer::make_cache(int64_t capacity) const {
  return KvCache(config_.num_layers, config_.kv_cache_heads(), config_.head_dim, capacity, config_.kv_values_stored());
}

int64_t Transformer::max_positions() const {
  int64_t limit = config_.max_position_embeddings > 0 ? config_.max_position_embeddings : INT64_MAX;
  if (weights_.position_embeddings.defined()) limit = std::min(limit, weights_.position_embeddings.dim(0));
  return limit;
}

std::shared_ptr<KvBlockPool> Transformer::make_kv_pool(int64_t block_tokens, int64_t num_blocks) const {
  return std::make_shared<KvBlockPool>(config_.num_layers, int64_t{config_.kv_cache_heads()} * config_.head_dim,
                                       block_tokens, num_blocks, config_.kv_values_stored());
}

std::vector<float> Transformer::forward(std::span<const int32_t> tokens, KvCache& cache, LogitsWanted wanted) {
  const SequenceStep step{tokens, &cache, wanted};
  return forward(std::span(&step, 1));
}

std::vector<float> Transformer::forward(std::span<const SequenceStep> batch) {
  const int64_t hidden = config_.hidden_size;
  MOE_CHECK(!batch.empty(), ErrorCode::kInvalidArgument, "forward needs at least one sequence");
  // The step's tokens side by side, each sequence's at the positions following its cache.
  std::vector<TokenSpan> sequences;
  std::vector<int64_t> positions;
  std::vector<int32_t> tokens;
  for (const SequenceStep& s : batch) {
    MOE_CHECK(!s.tokens.empty(), ErrorCode::kInvalidArgument, "forward needs at least one token per sequence");
    MOE_CHECK(s.cache != nullptr, ErrorCode::kInvalidArgument, "forward needs a KV cache per sequence");
    for (const TokenSpan& other : sequences)
      MOE_CHECK(other.cache != s.cache, ErrorCode::kInvalidArgument, "two sequences of one step share a KV cache");
    sequences.push_back({int64_t(tokens.size()), int64_t(s.tokens.size()), s.cache});
    for (size_t i = 0; i < s.tokens.size(); ++i) positions.push_back(s.cache->length() + int64_t(i));
    tokens.insert(tokens.end(), s.tokens.begin(), s.tokens.end());
  }
  const int64_t n = int64_t(tokens.size());
  step_rows_.clear();
  for (const TokenSpan& s : sequences)
    for (int64_t i = 0; i < s.count; ++i) step_rows_.push_back({s.cache, positions[size_t(s.first + i)]});
  for (const TokenSpan& s : sequences) s.cache->reserve_more(s.count);

  // Embedding rows, converted to f32.
  std::vector<float> x(size_t(n * hidden));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = tokens[size_t(i)];
    MOE_CHECK(id >= 0 && id < config_.vocab_size, ErrorCode::kInvalidArgument,
              "token id {} is outside the vocabulary of {}", id, config_.vocab_size);
    const Tensor row = weights_.embed_tokens.slice_rows(id, id + 1).to_f32();
    std::copy_n(row.data<float>(), hidden, x.data() + i * hidden);
    if (weights_.position_embeddings.defined()) {  // DS-MoE's learned absolute positions
      const int64_t position = positions[size_t(i)];
      MOE_CHECK(position < weights_.position_embeddings.dim(0), ErrorCode::kInvalidArgument,
                "position {} is beyond the model's {} learned positions", position, weights_.position_embeddings.dim(0));
      const Tensor p = weights_.position_embeddings.slice_rows(position, position + 1).to_f32();
      cpu::add(x.data() + i * hidden, p.data<float>(), hidden);
    }
  }

  std::vector<float> normed(x.size()), branch(x.size());
  std::vector<float> gate_residual;  // MoE++: the previous MoE layer's router logits
  std::vector<float> moe_branch;     // BAM: the MoE branch beside the attention branch
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    const int index = static_cast<int>(l);
    if (layer.ds) {  // DS-MoE: LayerNorm with bias, attention experts, GeLU MLP experts
      const float eps = float(config_.rms_norm_eps);
      cpu::layer_norm(x.data(), normed.data(), n, hidden, layer.input_norm.data(), layer.ds->ln_1_bias.data(), eps);
      attention(layer, index, normed.data(), positions, sequences, branch.data());
      cpu::add(x.data(), branch.data(), n * hidden);
      cpu::layer_norm(x.data(), normed.data(), n, hidden, layer.post_attention_norm.data(), layer.ds->ln_2_bias.data(), eps);
      RoutingDecision routing =
          ds_moe_route(layer.router, effective_routing_, normed.data(), n);
      if (routing_hook_) routing_hook_(index, positions, routing);
      run_routed_experts(index, normed.data(), routing, branch.data());
      for (int64_t t = 0; t < n; ++t) cpu::add(branch.data() + t * hidden, layer.ds->proj_bias.data(), hidden);
      cpu::add(x.data(), branch.data(), n * hidden);
      continue;
    }
    if (layer.bam) {  // BAM's parallel block: x + MoA(norm(x)) + MoE(norm(x))
      cpu::rms_norm(x.data(), normed.data(), n, hidden, layer.input_norm.data(), float(config_.rms_norm_eps));
      bam_attention(*layer.bam, config_, rope_params_, index, normed.data(), positions, sequences, branch.data(), linear_,
                    attention_backend_);
      if (moe_branch.size() != branch.size()) moe_branch.resize(branch.size());
      moe(layer, index, normed.data(), n, positions, moe_branch.data(), gate_residual);
      cpu::add(x.data(), branch.data(), n * hidden);
      cpu::add(x.data(), moe_branch.data(), n * hidden);
      continue;
    }
    cpu::rms_norm(x.data(), normed.data(), n, hidden, layer.input_norm.data(), float(config_.rms_norm_eps));
    attention(layer, index, normed.data(), positions, sequences, branch.data());
    cpu::add(x.data(), branch.data(), n * hidden);
    cpu::rms_norm(x.data(), normed.data(), n, hidden, layer.post_attention_norm.data(), float(config_.rms_norm_eps));
    if (layer.sparse) {
      moe(layer, index, normed.data(), n, positions, branch.data(), gate_residual);
    } else {
      std::vector<float> scratch;
      run_gated_mlp(layer.dense_mlp, normed.data(), n, branch.data(), scratch, linear_);
    }
    cpu::add(x.data(), branch.data(), n * hidden);
  }
  for (const TokenSpan& s : sequences) s.cache->advance(s.count);

  // The rows whose logits are wanted, normalised side by side for one LM-head product.
  std::vector<int64_t> rows;
  for (size_t i = 0; i < batch.size(); ++i) {
    const TokenSpan& s = sequences[i];
    if (batch[i].logits == LogitsWanted::kAll)
      for (int64_t t = 0; t < s.count; ++t) rows.push_back(s.first + t);
    else if (batch[i].logits == LogitsWanted::kLast)
      rows.push_back(s.first + s.count - 1);
  }
  const int64_t m = int64_t(rows.size());
  if (m == 0) return {};
  std::vector<float> wanted(size_t(m * hidden));
  for (int64_t r = 0; r < m; ++r) std::copy_n(x.data() + rows[size_t(r)] * hidden, hidden, wanted.data() + r * hidden);
  if (!final_norm_bias_.empty()) {
    cpu::layer_norm(wanted.data(), normed.data(), m, hidden, final_norm_.data(), final_norm_bias_.data(),
                    float(config_.rms_norm_eps));
  } else {
    cpu::rms_norm(wanted.data(), normed.data(), m, hidden, final_norm_.data(), float(config_.rms_norm_eps));
  }
  std::vector<float> logits(size_t(m * config_.vocab_size));
  linear(linear_, normed.data(), m, lm_head_, logits.data());
  return logits;
}

void Transformer::attention(const Layer& layer, int index, const float* x, std::span<const int64_t> positions,
                            std::span<const TokenSpan> sequences, float* out) {
  if (layer.mla) {  // DeepSeek-V2/V3
    mla_attention(*layer.mla, config_, rope_params_, index, x, positions, sequences, out, linear_, attention_backend_);
    return;
  }
  const int64_t n = int64_t(positions.size());
  const loading::ModelConfig& c = config_;
  const int64_t hd = c.head_dim, q_width = int64_t{c.num_heads} * hd, kv_width = int64_t{c.num_kv_heads} * hd;
  const float eps = float(c.rms_norm_eps);
  std::vector<float> q(size_t(n * q_width)), k(size_t(n * kv_width)), v(size_t(n * kv_width));
  linear_same_input(linear_, x, n,
                    {{&layer.q, q.data(), or_null(layer.q_bias)}, {&layer.k, k.data(), or_null(layer.k_bias)},
                     {&layer.v, v.data(), or_null(layer.v_bias)}});
  if (c.qk_norm == QkNorm::kFull) {  // OLMoE: over the whole projection, before the heads split
    cpu::rms_norm(q.data(), q.data(), n, q_width, layer.q_norm.data(), eps);
    cpu::rms_norm(k.data(), k.data(), n, kv_width, layer.k_norm.data(), eps);
  }
  if (c.clip_qkv > 0) {
    const float clip = float(c.clip_qkv);
    for (auto* t : {&q, &k, &v})
      for (float& value : *t) value = std::clamp(value, -clip, clip);
  }
  if (c.qk_norm == QkNorm::kPerHead) {  // Qwen3: each head over head_dim
    cpu::rms_norm(q.data(), q.data(), n * c.num_heads, hd, layer.q_norm.data(), eps);
    cpu::rms_norm(k.data(), k.data(), n * c.num_kv_heads, hd, layer.k_norm.data(), eps);
  }
  if (!(layer.ds && c.ds_moe.learned_positions)) {
    const cpu::RopeTable rope = cpu::make_rope_table(rope_params_, *std::max_element(positions.begin(), positions.end()) + 1);
    cpu::apply_rope(q.data(), n, c.num_heads, hd, rope_params_.rotary_dim, positions.data(), rope);
    cpu::apply_rope(k.data(), n, c.num_kv_heads, hd, rope_params_.rotary_dim, positions.data(), rope);
  }

  // Each sequence's new keys and values into its cache.
  for (const TokenSpan& s : sequences)
    for (int64_t t = 0; t < s.count; ++t) {
      const int64_t position = s.cache->length() + t;
      std::copy_n(k.data() + (s.first + t) * kv_width, kv_width, s.cache->key_row(index, position));
      std::copy_n(v.data() + (s.first + t) * kv_width, kv_width, s.cache->value_row(index, position));
    }
  std::vector<float> heads(size_t(n * q_width));
  // DS-MoE: heads of the attention experts left out are not computed; the others are weighted
  // by their expert before the output projection.
  RoutingDecision head_routing;
  std::vector<uint8_t> mask;
  if (layer.ds) {
    head_routing = ds_moe_route(layer.ds->attn_gate, effective_routing_, x, n);
    mask = active_heads(c, head_routing);
  }
  const float scale = 1.0f / std::sqrt(float(hd));
  // Attention per sequence, over its own cache: on the backend one sequence at a time, on the
  // CPU all of them in one parallel loop.
  std::vector<cpu::AttentionSequence> on_cpu;
  for (const TokenSpan& s : sequences) {
    const float* sq = q.data() + s.first * q_width;
    float* sout = heads.data() + s.first * q_width;
    const uint8_t* smask = layer.ds ? mask.data() + s.first * c.num_heads : nullptr;
    if (!attention_backend_) {
      on_cpu.push_back({sq, s.cache->blocks(index), s.count, s.cache->length(), sout, smask});
      continue;
    }
    AttentionStep step;
    step.layer = index;
    step.q = sq;
    step.n = s.count;
    step.start = s.cache->length();
    step.n_heads = c.num_heads;
    step.n_kv_heads = c.num_kv_heads;
    step.head_dim = hd;
    step.scale = scale;
    step.sliding_window = c.window_of(index);
    step.head_mask = smask;
    attention_backend_->attend(*s.cache, step, sout);
  }
  if (!on_cpu.empty()) cpu::attention(on_cpu, c.num_heads, c.num_kv_heads, hd, scale, c.window_of(index), or_null(layer.sinks));
  if (layer.ds) weight_attention_heads(c, head_routing, heads.data(), n);
  linear(linear_, heads.data(), n, layer.o, out, or_null(layer.o_bias));
}

void Transformer::router_logits(int layer, const float* x, int64_t m, float* out) const {
  const Layer& l = layers_.at(size_t(layer));
  MOE_CHECK(l.sparse, ErrorCode::kInvalidArgument, "layer {} has no router", layer);
  if (l.moe_plus_plus) {  // the FFN experts' columns, without the gating residual
    const int64_t E = config_.router_outputs();
    std::vector<float> all(size_t(m * E)), no_residual;
    moe_plus_plus_logits(*l.moe_plus_plus, config_, x, m, no_residual, all.data());
    for (int64_t r = 0; r < m; ++r) std::copy_n(all.data() + r * E, config_.num_experts, out + r * config_.num_experts);
    return;
  }
  cpu::matmul(x, m, l.router, out, or_null(l.router_logit_bias));
}

void Transformer::moe_plus_plus(const Layer& layer, int index, const float* x, int64_t n,
                                std::span<const int64_t> positions, float* out, std::vector<float>& gate_residual) {
  const loading::ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size;
  std::vector<float> logits(size_t(n * c.router_outputs()));
  moe_plus_plus_logits(*layer.moe_plus_plus, c, x, n, gate_residual, logits.data());
  MoePlusPlusRouting routing = moe_plus_plus_route(c, logits.data(), n);
  if (routing_hook_) routing_hook_(index, positions, routing.ffn);
  // The experts see the input times top-k (exact: a power of two).
  std::vector<float> xs(x, x + n * hidden);
  const float scale = moe_plus_plus_input_scale(c);
  for (float& v : xs) v *= scale;
  if (routing.ffn.num_assignments() > 0) {
    run_routed_experts(index, xs.data(), routing.ffn, out);
  } else {
    std::fill_n(out, n * hidden, 0.0f);
  }
  add_zero_computation_experts(*layer.moe_plus_plus, c, routing, xs.data(), n, out);
}

void Transformer::run_routed_experts(int index, const float* x, const RoutingDecision& decision, float* out) {
  MOE_CHECK(experts_ != nullptr, ErrorCode::kInternal, "no expert runner: routed experts were not loaded");
  const int64_t hidden = config_.hidden_size, n = decision.num_tokens();
  if (expert_input_hook_) expert_input_hook_(index, x, n, decision);
  std::vector<float> expert_out(size_t(decision.num_assignments() * hidden));
  experts_->run(index, x, hidden, decision, expert_out.data());
  // Weighted combine in expert-index order: out = 0 + w0*y0 + w1*y1 + ..., each product
  // rounded before the add, as transformers' index_add does.
  std::fill_n(out, n * hidden, 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int32_t a = decision.offsets[size_t(t)]; a < decision.offsets[size_t(t) + 1]; ++a)
      cpu::axpy(out + t * hidden, expert_out.data() + int64_t{a} * hidden, decision.weights[size_t(a)], hidden);
}

void Transformer::moe(const Layer& layer, int index, const float* x, int64_t n, std::span<const int64_t> positions,
                      float* out, std::vector<float>& gate_residual) {
  if (layer.moe_plus_plus) return moe_plus_plus(layer, index, x, n, positions, out, gate_residual);
  const loading::ModelConfig& c = config_;
  std::vector<float> logits(size_t(n * c.num_experts));
  cpu::matmul(x, n, layer.router, logits.data(), or_null(layer.router_logit_bias));
  RoutingDecision decision;
  if (c.family == ModelFamily::kGptOss) {
    MOE_CHECK(effective_routing_.kind == RoutingMode::Kind::kDefault, ErrorCode::kInternal, "gpt-oss keeps its own routing");
    decision = route_gpt_oss(logits.data(), n, c.num_experts, c.num_experts_per_tok);
  } else if (grouped_routing()) {  // DeepSeek-V2/V3
    GroupedTopK grouped;
    grouped.top_k = c.num_experts_per_tok;
    grouped.sigmoid = c.group_routing.sigmoid;
    grouped.n_group = c.group_routing.n_group;
    grouped.topk_group = c.group_routing.topk_group;
    grouped.bias = or_null(layer.router_bias);
    grouped.renormalize = c.norm_topk_prob;
    grouped.scaling = float(c.group_routing.routed_scaling_factor);
    decision = route_grouped(logits.data(), n, c.num_experts, grouped);
  } else {
    decision = family_route(logits.data(), n);
  }
  if (routing_hook_) routing_hook_(index, positions, decision);
  run_routed_experts(index, x, decision, out);
  add_shared_experts(layer, x, n, out);
}

RoutingDecision Transformer::family_route(const float* logits, int64_t n) const {
  const loading::ModelConfig& c = config_;
  TopKRouting options;
  options.top_k = c.num_experts_per_tok;
  // Mixtral always renormalises; the others follow norm_topk_prob (DeepSeek adds 1e-20).
  options.renormalize = c.family == ModelFamily::kMixtral || c.norm_topk_prob;
  if (c.family == ModelFamily::kDeepseekMoe) {
    options.renormalize = c.norm_topk_prob && c.num_experts_per_tok > 1;
    options.renormalize_epsilon = 1e-20f;
  }
  return route_with_mode(logits, n, c.num_experts, effective_routing_, options);
}

void Transformer::add_shared_experts(const Layer& layer, const float* x, int64_t n, float* out) {
  const int64_t hidden = config_.hidden_size;
  if (layer.has_shared) {
    std::vector<float> shared(size_t(n * hidden)), scratch;
    run_gated_mlp(layer.shared, x, n, shared.data(), scratch, linear_);
    if (layer.shared_gated) {  // Qwen2-MoE: sigmoid(gate(x)) * shared(x)
      std::vector<float> gate(static_cast<size_t>(n));
      cpu::matmul(x, n, layer.shared_gate, gate.data());
      for (int64_t t = 0; t < n; ++t) {
        const float g = cpu::sigmoid(gate[size_t(t)]);
        for (int64_t i = 0; i < hidden; ++i) shared[size_t(t * hidden + i)] *= g;
      }
    }
    cpu::add(out, shared.data(), n * hidden);
  }
}

}  // namespace moe::model
