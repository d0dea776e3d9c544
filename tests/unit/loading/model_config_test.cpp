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

// Qwen2-MoE as Qwen2MoeConfig reads it: qkv_bias for q, k, v only; the window on the layers
// layer_types marks, or else on the even layers below max_window_layers.
TEST(ModelConfig, Qwen2MoeBiasesAndSlidingLayers) {
  const std::string base = moe::testing::tiny_config("qwen2_moe");
  const auto with = [&](const std::string& extra) {
    return parse_model_config(R"({"qkv_bias": false, )" + base.substr(1).insert(0, extra), "q2");
  };
  const ModelConfig plain = with("");
  EXPECT_FALSE(plain.attention_bias);
  EXPECT_FALSE(plain.output_bias);
  EXPECT_EQ(plain.window_of(0), 0);
  const ModelConfig derived = with(R"("use_sliding_window": true, "sliding_window": 5, "max_window_layers": 2, )");
  EXPECT_EQ(derived.window_of(0), 5);
  EXPECT_EQ(derived.window_of(1), 0);
  EXPECT_EQ(derived.window_of(2), 0);
  const ModelConfig listed = with(
      R"("use_sliding_window": true, "sliding_window": 5, "layer_types": ["full_attention", "sliding_attention", "sliding_attention"], )");
  EXPECT_EQ(listed.window_of(0), 0);
  EXPECT_EQ(listed.window_of(2), 5);
  EXPECT_THROW(with(R"("layer_types": ["sliding_attention", "full_attention", "full_attention"], )"), Error);
  EXPECT_THROW(with(R"("use_sliding_window": true, "layer_types": ["full_attention"], )"), Error);
  const ModelConfig q3 = parse_model_config(R"({"attention_bias": true, )" + moe::testing::tiny_config("qwen3_moe").substr(1), "q3");
  EXPECT_TRUE(q3.attention_bias && q3.output_bias);
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

// Values that made NaN logits, or errors about something else, are refused naming the field.
TEST(ModelConfig, RefusesValuesThatMakeNaNsAndNamesWhatIsMissing) {
  const auto message = [](const std::string& model_type, const std::string& from, const std::string& to) {
    std::string text = moe::testing::tiny_config(model_type);
    const auto at = text.find(from);
    if (at == std::string::npos) return "'" + from + "' is not in the tiny config";
    text.replace(at, from.size(), to);
    try {
      parse_model_config(text, "config.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const auto expect_error = [&](const std::string& model_type, const std::string& from, const std::string& to,
                                const std::string& says) {
    const std::string m = message(model_type, from, to);
    EXPECT_NE(m.find(says), std::string::npos) << model_type << " with " << to << ": " << m;
  };
  const std::string theta = R"("rope_theta": 10000.0)", eps = R"("rms_norm_eps": 1e-6)";
  expect_error("mixtral", theta, R"("rope_theta": 0)", "'rope_theta' = 0 must be positive");
  expect_error("mixtral", theta, R"("rope_theta": -1)", "'rope_theta' = -1 must be positive");
  expect_error("qwen3_moe", eps, R"("rms_norm_eps": -1)", "'rms_norm_eps' = -1 must be positive");
  expect_error("qwen3_moe", eps, R"("rms_norm_eps": 0)", "'rms_norm_eps' = 0 must be positive");
  expect_error("olmoe", eps, R"("rms_norm_eps": 0)", "'rms_norm_eps' = 0 must be positive");
  expect_error("mixtral", theta, R"("rope_theta": 10000.0, "hidden_act": "swish9")", "hidden_act 'swish9' is not supported");
  expect_error("deepseek", theta, R"("rope_theta": 10000.0, "hidden_act": "mish")", "hidden_act 'mish' is not supported");
  EXPECT_EQ(message("mixtral", theta, R"("rope_theta": 10000.0, "hidden_act": "silu")"), "accepted");
  // The experts' width, absent: was 0, and an error about tensor shapes at load.
  expect_error("mixtral", R"("intermediate_size": 40, )", "", "has no 'intermediate_size' (the width of its 6 experts)");
  expect_error("olmoe", R"("intermediate_size": 40, )", "", "has no 'intermediate_size'");
  expect_error("qwen3_moe", R"("moe_intermediate_size": 24,)", "", "has no 'moe_intermediate_size'");
  expect_error("deepseek", R"("moe_intermediate_size": 24,)", "", "has no 'moe_intermediate_size'");
}

}  // namespace
}  // namespace moe::loading
