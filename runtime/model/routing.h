#pragma once
// The router's decision for a batch of tokens: for each token, the experts it uses and their
// weights. The count may vary per token (threshold routing), so the decision is stored as
// compressed rows; within a token, experts are sorted by index, which fixes the order of the
// weighted combine and keeps results bit-identical however experts are scheduled.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace moe::model {

struct RoutingDecision {
  std::vector<int32_t> offsets{0};  // token t uses assignments [offsets[t], offsets[t + 1])
  std::vector<int32_t> experts;
  std::vector<float> weights;

  int64_t num_tokens() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t num_assignments() const { return static_cast<int64_t>(experts.size()); }
  std::span<const int32_t> experts_of(int64_t token) const {
    return {experts.data() + offsets[size_t(token)], experts.data() + offsets[size_t(token) + 1]};
  }
  std::span<const float> weights_of(int64_t token) const {
    return {weights.data() + offsets[size_t(token)], weights.data() + offsets[size_t(token) + 1]};
  }
  // Appends one token's assignments (sorted by expert index here).
  void add_token(std::span<const int32_t> token_experts, std::span<const float> token_weights);
};

struct TopKRouting {
  int top_k = 2;
  bool renormalize = false;
  float renormalize_epsilon = 0.0f;  // DeepSeek divides by (sum + 1e-20)
};

// Softmax in f32 over each row of `logits` [num_tokens, num_experts], then top-k, then the
// optional renormalisation: the routing of Mixtral, Qwen-MoE, OLMoE and DeepSeek-MoE.
RoutingDecision route_top_k(const float* logits, int64_t num_tokens, int64_t num_experts,
                            const TopKRouting& options);

// DeepSeek-V2/V3's routing (loading::GroupRoutingConfig) over router logits [num_tokens,
// num_experts], as transformers' DeepseekV2TopkRouter / DeepseekV3TopkRouter compute it:
//   scores   softmax (V2) or sigmoid (V3) of the logits, in f32
//   choice   scores + bias (V3's e_score_correction_bias; none when null)
//   groups   with n_group > 1, only the best topk_group groups compete: a group scores its best
//            choice (V2, group_limited_greedy) or the sum of its best two (V3)
//   top-k    the top_k best choices of those groups
//   weights  the chosen experts' scores (never the bias), divided by (their sum + 1e-20) when
//            renormalize (V3's norm_topk_prob), times scaling (routed_scaling_factor)
struct GroupedTopK {
  int top_k = 1;
  bool sigmoid = false;
  int n_group = 1, topk_group = 1;
  const float* bias = nullptr;  // [num_experts]
  bool renormalize = false;
  float scaling = 1.0f;
};
RoutingDecision route_grouped(const float* logits, int64_t num_tokens, int64_t num_experts, const GroupedTopK& options);

// DS-MoE's inference-time routing modes (arXiv 2404.05567), selectable for any family:
//   default         the family's own top-k
//   dense           every expert, weighted by its softmax probability
//   topk:K          the K most probable experts
//   threshold:EPS   every expert with p * num_experts > EPS (the count varies per token; the
//                   most probable expert is kept when none passes)
//   threshold-topk:EPS  top-K with K the batch's mean threshold count (rounded, at least 1)
// Weights are the softmax probabilities, renormalised over the chosen experts when the family
// renormalises its top-k (Mixtral; Qwen, OLMoE and DeepSeek with norm_topk_prob).
struct RoutingMode {
  enum class Kind { kDefault, kDense, kTopK, kThreshold, kThresholdTopK } kind = Kind::kDefault;
  int k = 0;
  float epsilon = 0.0f;
  std::string describe() const;
};
// Throws moe::Error(kInvalidArgument) with the accepted spellings.
RoutingMode parse_routing_mode(const std::string& text);

RoutingDecision route_with_mode(const float* logits, int64_t num_tokens, int64_t num_experts, const RoutingMode& mode,
                                const TopKRouting& family);

}  // namespace moe::model
