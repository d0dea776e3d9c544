#include <gtest/gtest.h>

#include <cmath>

#include "runtime/core/error.h"
#include "runtime/model/expert_groups.h"
#include "runtime/model/routing.h"
#include "runtime/model/sampler.h"

namespace moe::model {
namespace {

// DeepSeek-V2 greedy: the softmax's top-k, each weight times routed_scaling_factor, never renormalised.
TEST(RouteGrouped, V2GreedyIsTheSoftmaxTopKScaled) {
  const float logits[] = {0.0f, 2.0f, 1.0f, 3.0f};
  const RoutingDecision d = route_grouped(logits, 1, 4, {.top_k = 2, .scaling = 1.5f});
  ASSERT_EQ(d.experts, (std::vector<int32_t>{1, 3}));
  const double z = std::exp(0.0) + std::exp(2.0) + std::exp(1.0) + std::exp(3.0);
  EXPECT_NEAR(d.weights[0], 1.5 * std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(d.weights[1], 1.5 * std::exp(3.0) / z, 1e-6);
}

// group_limited_greedy: a group scores its best expert; only the best topk_group groups compete,
// so the second-best expert overall loses to a weaker one of a kept group.
TEST(RouteGrouped, V2GroupLimitedKeepsTheBestGroupsByTheirBestExpert) {
  // Groups {0,1} {2,3} {4,5}, their bests 3.0, 2.9, 2.95: without groups the top-3 is 0, 5, 2.
  const float logits[] = {3.0f, 2.8f, 2.9f, 0.1f, 0.5f, 2.95f};
  const RoutingDecision wide = route_grouped(logits, 1, 6, {.top_k = 3});
  EXPECT_EQ(wide.experts, (std::vector<int32_t>{0, 2, 5}));
  const RoutingDecision grouped = route_grouped(logits, 1, 6, {.top_k = 3, .n_group = 3, .topk_group = 2});
  // Groups 0 and 2 are kept: expert 2 (2.9) is out, expert 1 (2.8) in.
  EXPECT_EQ(grouped.experts, (std::vector<int32_t>{0, 1, 5}));
  double z = 0;
  for (float l : logits) z += std::exp(double(l));
  EXPECT_NEAR(grouped.weights[1], std::exp(2.8) / z, 1e-6);  // the unmasked probability
  // A top-k larger than the kept groups' experts is refused (transformers would pick masked zeros).
  EXPECT_THROW(route_grouped(logits, 1, 6, {.top_k = 5, .n_group = 3, .topk_group = 2}), Error);
  EXPECT_THROW(route_grouped(logits, 1, 6, {.top_k = 2, .n_group = 4, .topk_group = 2}), Error);
}

// DeepSeek-V3 noaux_tc: sigmoid scores; the correction bias changes which experts are chosen
// (groups by the sum of their two best biased scores) but never the weights, which are the
// unbiased scores renormalised (+1e-20) and scaled.
TEST(RouteGrouped, V3BiasChoosesButTheUnbiasedScoresWeigh) {
  const float logits[] = {1.0f, 0.9f, 0.0f, -0.1f, 0.8f, 0.7f, -2.0f, -3.0f};
  const float bias[] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 2.0f, 2.5f};
  const auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  const RoutingDecision plain = route_grouped(logits, 1, 8, {.top_k = 2, .sigmoid = true});
  EXPECT_EQ(plain.experts, (std::vector<int32_t>{0, 1}));
  // With the bias, experts 6 and 7 rank first (sigmoid + 2 > 1) though their scores are tiny.
  const RoutingDecision biased =
      route_grouped(logits, 1, 8, {.top_k = 2, .sigmoid = true, .bias = bias, .renormalize = true, .scaling = 2.5f});
  ASSERT_EQ(biased.experts, (std::vector<int32_t>{6, 7}));
  const double s6 = sigmoid(-2.0), s7 = sigmoid(-3.0);
  EXPECT_NEAR(biased.weights[0], 2.5 * s6 / (s6 + s7), 1e-6);
  EXPECT_NEAR(biased.weights[1], 2.5 * s7 / (s6 + s7), 1e-6);
  // Four groups of two, two kept by the sum of their biased scores: group 3 (6, 7: 4.67) and
  // group 0 (0, 1: 1.44) beat group 2 (4, 5: 1.36); the top-3 of those is 7, 6, 0.
  const RoutingDecision grouped =
      route_grouped(logits, 1, 8, {.top_k = 3, .sigmoid = true, .n_group = 4, .topk_group = 2, .bias = bias});
  EXPECT_EQ(grouped.experts, (std::vector<int32_t>{0, 6, 7}));
  EXPECT_NEAR(grouped.weights[0], sigmoid(1.0), 1e-6);  // not renormalised, scaling 1
  // One group kept: group 3, whose experts win although their own scores are the smallest.
  const RoutingDecision one = route_grouped(logits, 1, 8, {.top_k = 2, .sigmoid = true, .n_group = 4, .topk_group = 1, .bias = bias});
  EXPECT_EQ(one.experts, (std::vector<int32_t>{6, 7}));
  // A sigmoid group of one expert has no second best.
  EXPECT_THROW(route_grouped(logits, 1, 8, {.top_k = 2, .sigmoid = true, .n_group = 8, .topk_group = 2}), Error);
}

TEST(RouteTopK, PicksTheLargestAndSortsByExpert) {
  // softmax of {0, 2, 1, 3}: experts 3 and 1 win.
  const float logits[] = {0.0f, 2.0f, 1.0f, 3.0f};
  const RoutingDecision d = route_top_k(logits, 1, 4, {.top_k = 2, .renormalize = false});
  ASSERT_EQ(d.num_assignments(), 2);
  EXPECT_EQ(d.experts[0], 1);
  EXPECT_EQ(d.experts[1], 3);
  const double z = std::exp(0.0) + std::exp(2.0) + std::exp(1.0) + std::exp(3.0);
  EXPECT_NEAR(d.weights[0], std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(d.weights[1], std::exp(3.0) / z, 1e-6);
}

TEST(RouteTopK, RenormalisedWeightsSumToOne) {
  const float logits[] = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f, 0.25f};
  const RoutingDecision d = route_top_k(logits, 2, 3, {.top_k = 2, .renormalize = true});
  ASSERT_EQ(d.num_tokens(), 2);
  for (int t = 0; t < 2; ++t) {
    float sum = 0;
    for (float w : d.weights_of(t)) sum += w;
    EXPECT_NEAR(sum, 1.0f, 1e-6);
  }
}

TEST(RouteTopK, TiesGoToTheLowerIndex) {
  const float logits[] = {1.0f, 1.0f, 1.0f, 1.0f};
  const RoutingDecision d = route_top_k(logits, 1, 4, {.top_k = 2});
  EXPECT_EQ(d.experts[0], 0);
  EXPECT_EQ(d.experts[1], 1);
}

TEST(RouteTopK, RejectsImpossibleK) {
  const float logits[] = {1.0f, 2.0f};
  EXPECT_THROW(route_top_k(logits, 1, 2, {.top_k = 3}), Error);
}

TEST(ExpertGroups, GroupsAssignmentsByExpertInOrder) {
  RoutingDecision d;
  d.add_token(std::vector<int32_t>{2, 0}, std::vector<float>{0.25f, 0.75f});
  d.add_token(std::vector<int32_t>{1, 2}, std::vector<float>{0.5f, 0.5f});
  EXPECT_EQ(d.experts, (std::vector<int32_t>{0, 2, 1, 2}));
  EXPECT_EQ(d.weights, (std::vector<float>{0.75f, 0.25f, 0.5f, 0.5f}));
  const auto groups = group_by_expert(d);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[2].expert, 2);
  EXPECT_EQ(groups[2].tokens, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(groups[2].assignments, (std::vector<int32_t>{1, 3}));
}

TEST(Sampler, GreedyTakesTheFirstMaximum) {
  Sampler s({});
  const std::vector<float> logits = {0.1f, 3.0f, 3.0f, -2.0f};
  EXPECT_EQ(s.sample(logits), 1);
}

TEST(Sampler, TinyTopPIsGreedy) {
  Sampler s({.temperature = 1.0, .top_p = 1e-6, .seed = 3});
  const std::vector<float> logits = {0.1f, 0.2f, 5.0f, -2.0f};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits), 2);
}

TEST(Sampler, FollowsTheDistribution) {
  Sampler s({.temperature = 1.0, .top_p = 1.0, .seed = 11});
  const std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 1/4, 3/4
  int ones = 0;
  for (int i = 0; i < 4000; ++i) ones += s.sample(logits);
  EXPECT_NEAR(ones / 4000.0, 0.75, 0.03);
}

TEST(Sampler, RejectsBadOptions) {
  EXPECT_THROW(Sampler({.temperature = -1.0}), Error);
  EXPECT_THROW(Sampler({.temperature = 1.0, .top_p = 0.0}), Error);
}

}  // namespace
}  // namespace moe::model

namespace moe::model {
namespace {

TEST(RoutingModes, ParseAndDescribe) {
  EXPECT_EQ(parse_routing_mode("default").kind, RoutingMode::Kind::kDefault);
  EXPECT_EQ(parse_routing_mode("dense").kind, RoutingMode::Kind::kDense);
  EXPECT_EQ(parse_routing_mode("topk:3").k, 3);
  EXPECT_FLOAT_EQ(parse_routing_mode("threshold:0.5").epsilon, 0.5f);
  EXPECT_EQ(parse_routing_mode("threshold-topk:1.5").describe(), "threshold-topk:1.5");
  for (const char* bad : {"topk:", "topk:0", "topk:1.5", "threshold:x", "threshold:-1", "sparse", "topk:2x", "threshold:inf",
                          "threshold:nan", "threshold-topk:1e39", "topk:1e10"})
    EXPECT_THROW(parse_routing_mode(bad), Error) << bad;
}

TEST(RoutingModes, DenseThresholdAndThresholdTopK) {
  // Two tokens over four experts: one peaked, one flat.
  const float logits[] = {4.0f, 1.0f, 0.0f, -1.0f, 0.1f, 0.0f, 0.05f, -0.1f};
  TopKRouting family;  // no renormalisation: DS-MoE's weights are the probabilities
  const RoutingDecision dense = route_with_mode(logits, 2, 4, parse_routing_mode("dense"), family);
  EXPECT_EQ(dense.num_assignments(), 8);
  float sum = 0;
  for (float w : dense.weights_of(0)) sum += w;
  EXPECT_NEAR(sum, 1.0f, 1e-6);
  // p * 4 > 1: the peaked token keeps one expert, the flat one three (p ~ .26, .24, .25, .22).
  const RoutingDecision threshold = route_with_mode(logits, 2, 4, parse_routing_mode("threshold:1.0"), family);
  EXPECT_EQ(threshold.experts_of(0).size(), 1u);
  EXPECT_EQ(threshold.experts_of(0)[0], 0);
  EXPECT_EQ(threshold.experts_of(1).size(), 2u);
  // Nothing passes a threshold of 4 (p * 4 <= 4): the most probable expert stays.
  const RoutingDecision none = route_with_mode(logits, 2, 4, parse_routing_mode("threshold:4"), family);
  EXPECT_EQ(none.num_assignments(), 2);
  EXPECT_EQ(none.experts_of(1)[0], 0);
  // threshold-topk: the mean count (1 + 2) / 2 rounds to 2 for every token.
  const RoutingDecision ttk = route_with_mode(logits, 2, 4, parse_routing_mode("threshold-topk:1.0"), family);
  EXPECT_EQ(ttk.experts_of(0).size(), 2u);
  EXPECT_EQ(ttk.experts_of(1).size(), 2u);
  // With renormalisation (Mixtral) the chosen weights sum to one.
  family.renormalize = true;
  const RoutingDecision renorm = route_with_mode(logits, 2, 4, parse_routing_mode("threshold:1.0"), family);
  sum = 0;
  for (float w : renorm.weights_of(1)) sum += w;
  EXPECT_NEAR(sum, 1.0f, 1e-6);
  // topk:K equals the family's top-k of the same K, bit for bit.
  TopKRouting two = family;
  two.top_k = 2;
  const RoutingDecision a = route_with_mode(logits, 2, 4, parse_routing_mode("topk:2"), family);
  const RoutingDecision b = route_top_k(logits, 2, 4, two);
  EXPECT_EQ(a.experts, b.experts);
  EXPECT_EQ(a.weights, b.weights);
}

}  // namespace
}  // namespace moe::model
