#include <gtest/gtest.h>

#include <cmath>

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

// DeepSeek-V2/V3 as DeepseekV2Config / DeepseekV3Config and their modeling code read them: the
// cache's latent row as the one KV head, the softmax scale under YaRN, routing per version.
TEST(ModelConfig, DeepSeekV2AndV3) {
  const ModelConfig v2 = parse_model_config(moe::testing::tiny_config("deepseek_v2"), "v2");
  EXPECT_EQ(v2.family, ModelFamily::kDeepseekV2);
  ASSERT_TRUE(v2.is_mla());
  EXPECT_EQ(v2.mla.q_lora_rank, 0);  // null: q_proj
  EXPECT_EQ(v2.num_kv_heads, 1);
  EXPECT_EQ(v2.head_dim, 16 + 4);
  EXPECT_FALSE(v2.kv_values_stored());
  EXPECT_TRUE(v2.mla.rope_interleave);
  EXPECT_DOUBLE_EQ(v2.mla.softmax_scale, 1 / std::sqrt(12.0));
  EXPECT_EQ(v2.sparse_layers, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(v2.shared_expert_intermediate_size, 24);
  EXPECT_FALSE(v2.group_routing.sigmoid);
  EXPECT_EQ(v2.group_routing.n_group, 3);
  EXPECT_EQ(v2.group_routing.topk_group, 2);
  EXPECT_DOUBLE_EQ(v2.group_routing.routed_scaling_factor, 1.5);
  const ModelConfig v3 = parse_model_config(moe::testing::tiny_config("deepseek_v3"), "v3");
  EXPECT_EQ(v3.family, ModelFamily::kDeepseekV3);
  EXPECT_EQ(v3.mla.q_lora_rank, 12);
  EXPECT_TRUE(v3.group_routing.sigmoid);
  EXPECT_TRUE(v3.norm_topk_prob);
  // Absent fields take DeepseekV3Config's defaults: q_lora_rank 1536, first_k_dense_replace 3.
  const ModelConfig defaults = parse_model_config(
      R"({"model_type": "deepseek_v3", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 4, "num_attention_heads": 2,
          "intermediate_size": 8})", "v3");
  EXPECT_EQ(defaults.mla.q_lora_rank, 1536);
  EXPECT_EQ(defaults.sparse_layers, (std::vector<bool>{false, false, false, true}));
  EXPECT_EQ(defaults.num_experts, 256);
  EXPECT_EQ(defaults.num_experts_per_tok, 8);
  EXPECT_EQ(defaults.group_routing.n_group, 8);
  EXPECT_DOUBLE_EQ(defaults.group_routing.routed_scaling_factor, 2.5);
  std::string kimi = moe::testing::tiny_config("deepseek_v3");
  kimi.replace(kimi.find("deepseek_v3"), 11, "kimi_k2");
  EXPECT_EQ(parse_model_config(kimi, "k2").family, ModelFamily::kDeepseekV3);
  // yarn_apply_mscale: the softmax scale times mscale(factor, mscale_all_dim)^2.
  const std::string yarn = R"({"rope_scaling": {"type": "yarn", "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
      "original_max_position_embeddings": 4096}, )";
  const ModelConfig scaled = parse_model_config(yarn + moe::testing::tiny_config("deepseek_v2").substr(1), "v2");
  const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  EXPECT_DOUBLE_EQ(scaled.mla.softmax_scale, m * m / std::sqrt(12.0));
  EXPECT_EQ(scaled.rope.type, "yarn");
}

// DeepSeek-V3's and Kimi-K2's quantization_config: FP8 e4m3 weights with 128 x 128 block scales
// (the default when weight_block_size is absent), or blocks of another shape.
TEST(ModelConfig, DeepSeekFp8QuantizationConfig) {
  const std::string tiny = moe::testing::tiny_config("deepseek_v3");
  const auto parse = [&](const std::string& q) {
    return parse_model_config(tiny.substr(0, tiny.size() - 1) + ", \"quantization_config\": " + q + "}", "config.json");
  };
  const ModelConfig released = parse(
      R"({"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]})");
  EXPECT_TRUE(released.fp8.enabled());
  EXPECT_EQ(released.fp8.block_rows, 128);
  EXPECT_EQ(released.fp8.block_cols, 128);
  const ModelConfig plain = parse(R"({"quant_method": "fp8", "modules_to_not_convert": ["lm_head"]})");
  EXPECT_EQ(plain.fp8.block_rows, 128);
  const ModelConfig small = parse(R"({"quant_method": "fp8", "weight_block_size": [16, 32]})");
  EXPECT_EQ(small.fp8.block_rows, 16);
  EXPECT_EQ(small.fp8.block_cols, 32);
  EXPECT_FALSE(parse_model_config(tiny, "config.json").fp8.enabled());
}

// Qwen3's and GLM-4.5's FP8 releases (Qwen3-30B-A3B-FP8, Qwen3-235B-A22B-FP8, GLM-4.5-Air-FP8)
// carry DeepSeek-V3's quantization_config, Qwen3's with a long modules_to_not_convert; other
// methods are refused by name.
TEST(ModelConfig, Qwen3AndGlmFp8QuantizationConfig) {
  for (const char* family : {"qwen3_moe", "glm4_moe"}) {
    const std::string tiny = moe::testing::tiny_config(family);
    const auto parse = [&](const std::string& q) {
      return parse_model_config(tiny.substr(0, tiny.size() - 1) + ", \"quantization_config\": " + q + "}", "config.json");
    };
    const ModelConfig released = parse(R"({"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
        "weight_block_size": [128, 128], "modules_to_not_convert": ["lm_head", "model.layers.0.mlp.gate"]})");
    EXPECT_TRUE(released.fp8.enabled()) << family;
    EXPECT_EQ(released.fp8.block_rows, 128) << family;
    EXPECT_EQ(released.fp8.block_cols, 128) << family;
    EXPECT_FALSE(parse_model_config(tiny, "config.json").fp8.enabled()) << family;
    try {
      parse(R"({"quant_method": "gptq", "bits": 4})");
      ADD_FAILURE() << family << " took gptq";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("quant_method 'gptq') is not supported"), std::string::npos) << e.what();
    }
  }
}

// Every DeepSeek-V2/V3 field that changes the math and is not implemented is refused, naming the
// field and its value; so are those that transformers and DeepSeek's own code read differently.
TEST(ModelConfig, DeepSeekV2AndV3RefuseWhatTheyDoNotRun) {
  const auto message = [](const std::string& model_type, const std::string& extra) {
    try {
      const std::string tiny = moe::testing::tiny_config(model_type);  // the extra fields last: they win
      parse_model_config(tiny.substr(0, tiny.size() - 1) + ", " + extra + "}", "config.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const auto expect_error = [&](const std::string& model_type, const std::string& extra, const std::string& says) {
    const std::string m = message(model_type, extra);
    EXPECT_NE(m.find(says), std::string::npos) << model_type << " with " << extra << ": " << m;
  };
  expect_error("deepseek_v3", R"("quantization_config": {"quant_method": "awq", "bits": 4})",
               "quantization_config (quant_method 'awq') is not supported");
  expect_error("deepseek_v3", R"("quantization_config": {"quant_method": "fp8", "fmt": "e5m2"})",
               "quantization_config fmt 'e5m2' is not supported (e4m3 only)");
  expect_error("deepseek_v3", R"("quantization_config": {"quant_method": "fp8", "activation_scheme": "static"})",
               "quantization_config activation_scheme 'static' is not supported");
  expect_error("deepseek_v2", R"("quantization_config": {"quant_method": "fp8", "weight_block_size": [128]})",
               "quantization_config weight_block_size [128] is not supported");
  expect_error("deepseek_v3", R"("quantization_config": {"quant_method": "fp8", "weight_block_size": [0, 128]})",
               "weight_block_size [0,128] is not supported");
  expect_error("deepseek_v3", R"("quantization_config": {"quant_method": "fp8", "group_size": 64})",
               "quantization_config field 'group_size' is not supported");
  expect_error("deepseek_v2", R"("norm_topk_prob": true)", "norm_topk_prob = true is not supported for deepseek_v2");
  expect_error("deepseek_v3", R"("moe_layer_freq": 2)", "moe_layer_freq = 2 is not supported");
  expect_error("deepseek_v3", R"("topk_method": "greedy")", "topk_method 'greedy' is not supported");
  expect_error("deepseek_v2", R"("topk_method": "noaux_tc")", "topk_method 'noaux_tc' is not supported");
  expect_error("deepseek_v3", R"("scoring_func": "softmax")", "scoring_func 'softmax' is not supported");
  expect_error("deepseek_v2", R"("scoring_func": "sigmoid")", "scoring_func 'sigmoid' is not supported");
  expect_error("deepseek_v2", R"("mlp_bias": true)", "mlp_bias = true is not supported");
  expect_error("deepseek_v3", R"("partial_rotary_factor": 0.5)", "partial_rotary_factor = 0.5 is not supported");
  expect_error("deepseek_v3", R"("num_experts_per_tok": 5)", "num_experts_per_tok = 5 exceeds the 4 experts");
  expect_error("deepseek_v3", R"("n_group": 6)", "n_group = 6 leaves fewer than two experts per group");
  expect_error("deepseek_v2", R"("n_group": 4)", "does not split into n_group = 4 groups");
  expect_error("deepseek_v3", R"("qk_rope_head_dim": 5)", "qk_rope_head_dim = 5 must be even");
  expect_error("deepseek_v3", R"("n_group": null)", "n_group and topk_group must be numbers");
  // YaRN's truncate: false (gpt-oss's default) is implemented for every family now.
  EXPECT_EQ(message("deepseek_v3", R"("rope_scaling": {"type": "yarn", "factor": 4, "truncate": false})"), "accepted");
  expect_error("deepseek_v2", R"("num_key_value_heads": 2)", "num_key_value_heads = 2 is not supported");
  // What leaves the math alone is accepted: V2's greedy with groups given, V3's noaux_tc, MTP layers.
  EXPECT_EQ(message("deepseek_v2", R"("topk_method": "greedy", "norm_topk_prob": false)"), "accepted");
  EXPECT_EQ(message("deepseek_v3", R"("topk_method": "noaux_tc", "num_nextn_predict_layers": 1, "scoring_func": "sigmoid")"),
            "accepted");
}

// gpt-oss as GptOssConfig reads it: its own defaults (head_dim 64, 4 experts a token, the release's
// YaRN with truncate false, the even layers sliding by 128), every field that changes the math.
TEST(ModelConfig, Glm4MoeDefaultsAndFields) {
  const std::string base = R"({"model_type": "glm4_moe", "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 3,
      "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 40, "n_routed_experts": 8)";
  const ModelConfig d = parse_model_config(base + "}", "config.json");
  EXPECT_EQ(d.family, ModelFamily::kGlm4Moe);
  EXPECT_DOUBLE_EQ(d.rope.partial_rotary_factor, 0.5);  // Glm4MoeConfig's default
  EXPECT_EQ(d.qk_norm, QkNorm::kNone);
  EXPECT_FALSE(d.attention_bias || d.output_bias);
  EXPECT_EQ(d.num_experts_per_tok, 8);
  EXPECT_EQ(d.moe_intermediate_size, 1408);
  EXPECT_EQ(d.shared_expert_intermediate_size, 1408);  // one shared expert
  EXPECT_TRUE(d.norm_topk_prob);
  EXPECT_TRUE(d.group_routing.sigmoid);
  EXPECT_EQ(d.group_routing.n_group, 1);
  EXPECT_DOUBLE_EQ(d.rms_norm_eps, 1e-5);
  EXPECT_FALSE(d.is_sparse(0));  // first_k_dense_replace 1
  EXPECT_TRUE(d.is_sparse(1) && d.is_sparse(2));

  const ModelConfig g = parse_model_config(base + R"(, "use_qk_norm": true, "attention_bias": true, "n_group": 4,
      "topk_group": 2, "num_experts_per_tok": 3, "moe_intermediate_size": 16, "n_shared_experts": 2,
      "first_k_dense_replace": 2, "routed_scaling_factor": 2.5, "norm_topk_prob": false,
      "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0, "partial_rotary_factor": 1.0}})", "config.json");
  EXPECT_EQ(g.qk_norm, QkNorm::kPerHead);
  EXPECT_TRUE(g.attention_bias);
  EXPECT_FALSE(g.output_bias);  // o_proj never has one
  EXPECT_DOUBLE_EQ(g.rope.partial_rotary_factor, 1.0);
  EXPECT_EQ(g.group_routing.n_group, 4);
  EXPECT_EQ(g.group_routing.topk_group, 2);
  EXPECT_DOUBLE_EQ(g.group_routing.routed_scaling_factor, 2.5);
  EXPECT_EQ(g.shared_expert_intermediate_size, 32);
  EXPECT_FALSE(g.norm_topk_prob);
  EXPECT_EQ(g.num_sparse_layers(), 1);

  for (const char* bad : {R"(, "n_group": 3})", R"(, "quantization_config": {"quant_method": "awq"}})",
                          R"(, "mlp_bias": true})", R"(, "partial_rotary_factor": 0.3})"}) {
    try {
      parse_model_config(base + bad, "config.json");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    }
  }
}

TEST(ModelConfig, GptOssDefaultsAndFields) {
  const std::string base = R"({"model_type": "gpt_oss", "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 3,
      "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 8, "intermediate_size": 32)";
  const ModelConfig d = parse_model_config(base + "}", "config.json");
  EXPECT_EQ(d.family, ModelFamily::kGptOss);
  EXPECT_EQ(d.head_dim, 64);
  EXPECT_EQ(d.num_experts_per_tok, 4);
  EXPECT_EQ(d.num_experts, 8);
  EXPECT_EQ(d.moe_intermediate_size, 32);
  EXPECT_DOUBLE_EQ(d.rms_norm_eps, 1e-5);
  EXPECT_TRUE(d.attention_bias && d.output_bias);
  EXPECT_TRUE(d.attention_sinks());
  EXPECT_EQ(d.rope.type, "yarn");
  EXPECT_DOUBLE_EQ(d.rope.factor, 32.0);
  EXPECT_DOUBLE_EQ(d.rope.theta, 150000.0);
  EXPECT_FALSE(d.rope.truncate);
  EXPECT_EQ(d.rope.original_max_position_embeddings, 4096);
  EXPECT_EQ(d.sliding_window, 128);
  EXPECT_EQ(d.window_of(0), 128);
  EXPECT_EQ(d.window_of(1), 0);
  EXPECT_EQ(d.window_of(2), 128);
  EXPECT_DOUBLE_EQ(d.gpt_oss.swiglu_alpha, 1.702);
  EXPECT_DOUBLE_EQ(d.gpt_oss.swiglu_limit, 7.0);
  EXPECT_FALSE(d.gpt_oss.mxfp4_experts);
  EXPECT_EQ(d.num_sparse_layers(), 3);

  const ModelConfig g = parse_model_config(base + R"(, "head_dim": 8, "num_experts_per_tok": 3, "sliding_window": 5,
      "layer_types": ["full_attention", "full_attention", "sliding_attention"], "swiglu_alpha": 1.5, "swiglu_limit": 2.0,
      "attention_bias": false, "hidden_act": "anything: the experts never read it",
      "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "rope_theta": 10000.0},
      "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": ["lm_head"]}})", "config.json");
  EXPECT_EQ(g.head_dim, 8);
  EXPECT_EQ(g.num_experts_per_tok, 3);
  EXPECT_EQ(g.window_of(0), 0);
  EXPECT_EQ(g.window_of(2), 5);
  EXPECT_DOUBLE_EQ(g.gpt_oss.swiglu_alpha, 1.5);
  EXPECT_DOUBLE_EQ(g.gpt_oss.swiglu_limit, 2.0);
  EXPECT_FALSE(g.attention_bias || g.output_bias);
  EXPECT_TRUE(g.rope.truncate);
  EXPECT_DOUBLE_EQ(g.rope.factor, 4.0);
  EXPECT_TRUE(g.gpt_oss.mxfp4_experts);

  const auto message = [&](const std::string& extra) {
    try {
      parse_model_config(base + ", " + extra + "}", "config.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const auto expect_error = [&](const std::string& extra, const std::string& says) {
    const std::string m = message(extra);
    EXPECT_NE(m.find(says), std::string::npos) << extra << ": " << m;
  };
  expect_error(R"("quantization_config": {"quant_method": "fp8"})", "quant_method 'fp8' is not supported for gpt_oss");
  expect_error(R"("swiglu_limit": -1.0)", "swiglu_limit = -1 is not supported");
  expect_error(R"("partial_rotary_factor": 0.5)", "partial_rotary_factor = 0.5 is not supported for gpt_oss");
  expect_error(R"("layer_types": ["full_attention", "chunked_attention", "full_attention"])",
               "layer_types[1] = 'chunked_attention' is not supported");
  expect_error(R"("layer_types": ["full_attention"])", "layer_types must list one type for each of the 3 layers");
  expect_error(R"("sliding_window": null)", "sliding_window = null is not supported with sliding_attention layers");
  expect_error(R"("num_experts_per_tok": 9)", "num_experts_per_tok (9) exceeds the number of experts (8)");
  // What transformers' gpt-oss never reads at inference is accepted.
  EXPECT_EQ(message(R"("router_aux_loss_coef": 0.9, "output_router_logits": true, "attention_dropout": 0.5, "use_cache": false)"),
            "accepted");
  EXPECT_EQ(message(R"("sliding_window": null, "layer_types": ["full_attention", "full_attention", "full_attention"])"),
            "accepted");
}

}  // namespace
}  // namespace moe::loading
