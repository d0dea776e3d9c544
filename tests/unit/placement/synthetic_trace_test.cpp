#include "placement/trace/synthetic_trace.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "runtime/core/error.h"

namespace moe::placement {
namespace {

SyntheticRouting routing(double skew, double locality = 0) {
  SyntheticRouting o;
  o.model_name = "shape";
  o.layers = 3;
  o.experts = 16;
  o.top_k = 4;
  o.sequences = 3;
  o.tokens_per_sequence = 200;
  o.skew = skew;
  o.locality = locality;
  o.seed = 7;
  return o;
}

// Share of a layer's uses taken by its most used expert.
double top_share(const Trace& t, int layer) {
  std::vector<int64_t> uses(16, 0);
  int64_t all = 0;
  for (const auto& token : t.tokens)
    for (const int32_t e : token.layers[size_t(layer)].experts) ++uses[size_t(e)], ++all;
  return double(*std::max_element(uses.begin(), uses.end())) / double(all);
}

TEST(SyntheticTrace, HasTheShapeAndDistinctTopKChoices) {
  const Trace t = synthetic_trace(routing(1.0));
  EXPECT_EQ(t.model.num_layers, 3);
  EXPECT_EQ(t.model.num_experts, 16);
  ASSERT_EQ(t.tokens.size(), 600u);
  EXPECT_EQ(t.tokens[200].sequence_id, 1);
  EXPECT_EQ(t.tokens[200].position, 0);
  for (const auto& token : t.tokens) {
    ASSERT_EQ(token.layers.size(), 3u);
    for (const auto& l : token.layers) {
      const std::set<int32_t> distinct(l.experts.begin(), l.experts.end());
      EXPECT_EQ(distinct.size(), 4u);
      EXPECT_TRUE(*distinct.begin() >= 0 && *distinct.rbegin() < 16);
    }
  }
  EXPECT_EQ(synthetic_trace(routing(1.0)).tokens[123].layers[1].experts, t.tokens[123].layers[1].experts);  // seeded
}

TEST(SyntheticTrace, SkewConcentratesAndLocalityRepeats) {
  const Trace uniform = synthetic_trace(routing(0.0)), skewed = synthetic_trace(routing(2.0));
  EXPECT_LT(top_share(uniform, 0), 0.1);  // 1/16 of the uses, give or take
  EXPECT_GT(top_share(skewed, 0), 0.2);   // the most popular expert is in almost every choice
  const Trace sticky = synthetic_trace(routing(0.0, 0.9));
  int repeats = 0, pairs = 0;
  for (size_t i = 1; i < sticky.tokens.size(); ++i)
    if (sticky.tokens[i].sequence_id == sticky.tokens[i - 1].sequence_id)
      ++pairs, repeats += sticky.tokens[i].layers[0].experts == sticky.tokens[i - 1].layers[0].experts;
  EXPECT_GT(double(repeats) / pairs, 0.85);
}

TEST(SyntheticTrace, RefusesImpossibleShapes) {
  SyntheticRouting o = routing(1.0);
  o.top_k = 17;
  EXPECT_THROW(synthetic_trace(o), Error);
  o = routing(-1.0);
  EXPECT_THROW(synthetic_trace(o), Error);
  o = routing(1.0, 1.5);
  EXPECT_THROW(synthetic_trace(o), Error);
}

}  // namespace
}  // namespace moe::placement
