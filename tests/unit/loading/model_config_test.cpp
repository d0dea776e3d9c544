#include <gtest/gtest.h>

#include "runtime/core/error.h"
#include "runtime/loading/model_config.h"
#include "tests/unit/model/tiny_configs.h"

namespace moe::loading {
namespace {

TEST(ModelConfig, FamiliesAndTheirRules) {
  const ModelConfig q2 = parse_model_config(moe::testing::tiny_config("qwen2_moe"), "q2");
  EXPECT_EQ(q2.family, ModelFamily::kQwen2Moe);
  EXPECT_TRUE(q2.shared_expert_gated);
  EXPECT_TRUE(q2.attention_bias);
  EXPECT_EQ(q2.sparse_layers, (std::vector<bool>{true, false, true}));  // mlp_only_layers [1]
  const ModelConfig ds = parse_model_config(moe::testing::tiny_config("deepseek"), "ds");
  EXPECT_EQ(ds.sparse_layers, (std::vector<bool>{false, true, true}));  // first_k_dense_replace 1
  EXPECT_EQ(ds.shared_expert_intermediate_size, 48);                     // 2 shared x 24
  EXPECT_FALSE(ds.shared_expert_gated);
  const ModelConfig ol = parse_model_config(moe::testing::tiny_config("olmoe"), "ol");
  EXPECT_EQ(ol.qk_norm, QkNorm::kFull);
  EXPECT_EQ(ol.clip_qkv, 4.0);
  EXPECT_EQ(parse_model_config(moe::testing::tiny_config("qwen3_moe"), "q3").qk_norm, QkNorm::kPerHead);
}

TEST(ModelConfig, ClearErrors) {
  const auto code = [](const std::string& text) {
    try {
      parse_model_config(text, "config.json");
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  EXPECT_EQ(code("{"), ErrorCode::kCorrupt);
  EXPECT_EQ(code("[]"), ErrorCode::kCorrupt);
  EXPECT_EQ(code(R"({"model_type": "gpt2"})"), ErrorCode::kUnsupported);
  EXPECT_EQ(code(R"({"model_type": "mixtral", "hidden_size": "big"})"), ErrorCode::kCorrupt);
  EXPECT_EQ(code(R"({"model_type": "mixtral", "hidden_size": -5})"), ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace moe::loading
