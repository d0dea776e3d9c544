// Models that live in int8/int4 (--weights): the forward over quantised weights gives the same
// bits as the forward over their dequantised values written out by hand as f32 (the kernels'
// contract: an element is float(q) * scale rounded once, then the same 32-lane FMA order), an
// expert store's copies give the same bits as converting at load, the error figures are small
// and nonzero, and bad formats are one clear error.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "kernels/cpu/quantize.h"
#include "offload/store/model_layout.h"
#include "runtime/core/error.h"
#include "runtime/model/logit_comparison.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/perplexity.h"
#include "runtime/model/synthetic_weights.h"
#include "runtime/model/weight_walk.h"
#include "tests/unit/model/greedy_logits.h"
#include "tests/unit/model/tiny_configs.h"

namespace moe::model {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";
const std::vector<int32_t> kPrompt = {1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3};

LoadOptions with_weights(const std::string& weights, const std::string& parts = "all") {
  LoadOptions o;
  o.weights = parse_weight_format(weights, parts);
  return o;
}

std::vector<float> run(Transformer& t) { return moe::testing::prefill_and_greedy_logits(t, kPrompt, 4); }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The quantised weights with every int8/int4 matrix replaced by its dequantised f32 values.
ModelWeights dequantised_by_hand(const ModelWeights& quantised) {
  ModelWeights w = quantised;  // tensors are shared; the quantised ones are replaced below
  int64_t replaced = 0;
  for_each_linear(w, [&](Linear& l, WeightPart) {
    if (!l.quantized()) return;
    const int64_t rows = l.out_features(), cols = l.in_features();
    Tensor f32 = Tensor::empty(DType::kF32, {rows, cols});
    cpu::dequantize_rows(l.weight.data<uint8_t>(), l.scales.data<float>(), rows, cols,
                         QuantFormat{l.weight.dtype(), l.group_size()}, f32.data<float>());
    l.weight = f32;
    l.scales = Tensor();
    ++replaced;
  });
  EXPECT_GT(replaced, 0);
  return w;
}

class QuantisedFixture : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(QuantisedFixture, RunsLikeItsDequantisedWeightsBitForBit) {
  const auto& [fixture, format] = GetParam();
  LoadedModel m = load_model(kFixtures / fixture, with_weights(format));
  ASSERT_FALSE(m.quantization.empty());
  Transformer by_hand(m.config, dequantised_by_hand(m.transformer->weights()));
  EXPECT_TRUE(same_bits(run(*m.transformer), run(by_hand)));
  LoadedModel stored = load_model(kFixtures / fixture);  // and the conversion did change the model
  EXPECT_FALSE(same_bits(run(*m.transformer), run(*stored.transformer)));
}

// Every family, with its experts, dense matrices and LM head converted (groups of 16 divide
// every fixture's widths).
INSTANTIATE_TEST_SUITE_P(EveryFamily, QuantisedFixture,
                         ::testing::Combine(::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "deepseek", "olmoe",
                                                              "moe_plus_plus", "ds_moe", "bam-expert-kv", "bam-shared-kv",
                                                              "deepseek_v2-lite", "deepseek_v2-group", "deepseek_v3", "deepseek_v3-plain",
                                                              "glm4_moe", "glm4_moe-plain"),
                                            ::testing::Values("int8:16", "int4:16")),
                         [](const auto& test) {
                           std::string name = std::get<0>(test.param) + "_" + std::get<1>(test.param);
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(QuantisedModel, OnlyThePartsAskedAreConverted) {
  LoadedModel m = load_model(kFixtures / "qwen2_moe", with_weights("int8:16", "experts"));
  ASSERT_EQ(m.quantization.parts.size(), 1u);
  EXPECT_EQ(m.quantization.parts[0].part, "experts");
  for_each_linear(m.transformer->weights(), [](const Linear& l, WeightPart part) {
    EXPECT_EQ(l.quantized(), part == WeightPart::kExpert);
  });
  LoadedModel all = load_model(kFixtures / "qwen2_moe", with_weights("int4:16", "all"));
  ASSERT_EQ(all.quantization.parts.size(), 3u);
  for_each_linear(all.transformer->weights(), [](const Linear& l, WeightPart part) {
    EXPECT_EQ(l.quantized(), part != WeightPart::kRouter);  // routers keep the checkpoint's weights
  });
  EXPECT_FALSE(all.transformer->weights().embed_tokens.dtype() == DType::kI4);
}

TEST(QuantisedModel, ErrorFiguresAreSmallAndNonzeroOnARandomModel) {
  const auto config = loading::parse_model_config(moe::testing::tiny_config("mixtral"), "mixtral");
  const auto source = std::make_shared<SyntheticWeights>(config, 3);
  LoadedModel reference = load_model(config, source);
  double kl_int8 = 0;
  for (const char* format : {"int8:8", "int4:8"}) {
    SCOPED_TRACE(format);
    LoadedModel m = load_model(config, source, with_weights(format));
    const bool int8 = std::string_view(format).starts_with("int8");
    ASSERT_EQ(m.quantization.parts.size(), 3u);
    for (const QuantizedPart& p : m.quantization.parts) {
      EXPECT_GT(p.rms_rel_error, int8 ? 1e-4 : 1e-2) << p.part;
      EXPECT_LT(p.rms_rel_error, int8 ? 1e-2 : 0.15) << p.part;
      EXPECT_GT(p.max_rel_error, 0.0) << p.part;
      EXPECT_LT(p.max_rel_error, int8 ? 1.0 / 127 : 1.0 / 7) << p.part;  // half a step of the largest group
      EXPECT_LT(p.bytes_after, p.bytes_before) << p.part;
    }
    // Logits against the checkpoint's, over every position of a window.
    const std::vector<int32_t> text = {3, 17, 42, 5, 96, 0, 11, 64, 23, 80, 7, 51};  // inside the vocabulary of 97
    LogitComparison compare(*reference.transformer);
    const Perplexity p = evaluate_perplexity(*m.transformer, text, 64, {}, [&](auto window, auto logits) {
      compare.add(window, 0, logits);
    });
    const LogitAgreement& a = compare.result();
    EXPECT_EQ(a.positions, int64_t(text.size()));
    EXPECT_GT(a.max_abs_diff, 0.0);
    EXPECT_GT(a.mean_kl(), 0.0);
    EXPECT_NEAR(a.perplexity(), p.value(), 1e-9 * p.value());  // scored the way the perplexity is
    const Perplexity bf16 = evaluate_perplexity(*reference.transformer, text, 64);
    EXPECT_NEAR(a.reference_perplexity(), bf16.value(), 1e-9 * bf16.value());
    if (int8) kl_int8 = a.mean_kl();
    else EXPECT_GT(a.mean_kl(), kl_int8);  // int4 is further from the checkpoint than int8
  }
}

TEST(QuantisedModel, AComparisonWithItselfIsExact) {
  LoadedModel m = load_model(kFixtures / "mixtral");
  KvCache cache = m.transformer->make_cache(32);
  const std::vector<float> logits = m.transformer->forward(kPrompt, cache, LogitsWanted::kAll);
  LogitComparison compare(*m.transformer);
  const int64_t vocab = m.config.vocab_size;
  compare.add(kPrompt, 3, std::span(logits).subspan(size_t(3 * vocab)));
  EXPECT_EQ(compare.result().positions, int64_t(kPrompt.size()) - 3);
  EXPECT_EQ(compare.result().top1_agreement(), 1.0);
  EXPECT_EQ(compare.result().max_abs_diff, 0.0);
  EXPECT_EQ(compare.result().mean_kl(), 0.0);
}

TEST(QuantisedModel, StoreCopiesGiveTheBitsOfConvertingAtLoad) {
  const auto store_path = std::filesystem::temp_directory_path() / "moe_quantised_model_test.moe";
  const loading::ModelConfig config = loading::load_model_config(kFixtures / "qwen3_moe");
  offload::PackOptions pack;
  pack.extra_formats = {QuantFormat{DType::kI8, 16}, QuantFormat{DType::kI4, 16}};
  offload::pack_store(kFixtures / "qwen3_moe", store_path, offload::store_layout_for(config), pack);
  for (const char* format : {"int8", "int4:16"}) {
    SCOPED_TRACE(format);
    LoadedModel from_store = load_model(store_path, with_weights(format, "experts"));
    ASSERT_EQ(from_store.quantization.parts.size(), 1u);
    const QuantizedPart& part = from_store.quantization.parts[0];
    EXPECT_EQ(part.origin, "store copies");
    EXPECT_EQ(part.format, std::string_view(format).starts_with("int8") ? "int8:g16" : "int4:g16");
    EXPECT_GT(part.rms_rel_error, 0.0);
    LoadedModel converted = load_model(kFixtures / "qwen3_moe", with_weights(part.format.substr(0, 4) + ":16", "experts"));
    EXPECT_EQ(converted.quantization.parts[0].origin, "converted at load");
    EXPECT_NEAR(part.rms_rel_error, converted.quantization.parts[0].rms_rel_error, 0.2 * part.rms_rel_error);
    EXPECT_TRUE(same_bits(run(*from_store.transformer), run(*converted.transformer)));
  }
  // A group size the store has no copy in is converted at load.
  LoadedModel other = load_model(store_path, with_weights("int8:32", "experts"));
  EXPECT_EQ(other.quantization.parts[0].origin, "converted at load");
  std::filesystem::remove(store_path);
}

TEST(QuantisedModel, BadFormatsAreOneClearError) {
  for (const char* bad : {"int3", "int8:12", "int8:0", "int8:", "int4:g32", "int8:32x", "bf16", "fp8"}) {
    try {
      parse_weight_format(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(fmt::format("--weights {}:", bad)), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(parse_weight_format("int8", "attention"), Error);
  EXPECT_THROW(parse_weight_format("", "all"), Error);  // parts without a format
  EXPECT_EQ(parse_weight_format("int4").format, (QuantFormat{DType::kI4, kDefaultGroupSize}));
  EXPECT_EQ(parse_weight_format("int8:64").format, (QuantFormat{DType::kI8, 64}));
  // The mixtral fixture's experts are 48 wide: groups of 32 do not divide them, and the error says what does.
  try {
    load_model(kFixtures / "mixtral", with_weights("int8:32"));
    ADD_FAILURE() << "int8:32 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not divide the 48 input columns"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("int8:16 fits"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe::model
