// FP8 checkpoints (DeepSeek-V3's, Kimi-K2's and Qwen3/GLM-4.5's FP8 releases' float8_e4m3fn weights
// with weight_scale_inv block scales) against Hugging Face transformers on the dequantised weights:
// the tiny random checkpoints of tests/reference/make_hf_fp8_fixtures.py (the releases' 128 x 128
// blocks over shapes that leave partial edge blocks, and 16 x 32 blocks), read in place; logits and greedy
// continuations; offloaded experts at every budget give the resident bits; malformed checkpoints
// give one clear error naming the tensor.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>

#include "offload/executor/expert_backing.h"
#include "offload/executor/offloaded_experts.h"
#include "offload/executor/predictor.h"
#include "offload/store/expert_store.h"
#include "offload/store/model_layout.h"
#include "offload/store/store_writer.h"
#include "runtime/loading/safetensors.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/synthetic_weights.h"
#include "runtime/model/weight_format.h"
#include "runtime/model/weight_walk.h"
#include "tests/integration/hf_fixture.h"
#include "tests/integration/offload_fixture.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::all_logits;
using testing::expected_ints;
using testing::kFixtures;
using testing::relative_error;

using testing::same_bits;

class Fp8Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Fp8Fixture, LogitsAndGreedyTokensMatchTransformers) {
  const auto dir = kFixtures / GetParam();
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt"), generated = expected_ints(dir, "generated");
  model::LoadedModel m = model::load_model(dir);
  ASSERT_TRUE(m.config.fp8.enabled());
  const std::vector<float> logits = all_logits(*m.transformer, prompt);
  const double error = relative_error(logits, testing::expected_logits(dir));
  RecordProperty("relative_error", std::to_string(error));
  std::printf("%s: max |logit - transformers| relative to max |transformers| %.3g\n", GetParam().c_str(), error);
  EXPECT_LT(error, 1e-5);
  model::GenerationOptions options;
  options.max_new_tokens = int(generated.size());
  EXPECT_EQ(model::generate(*m.transformer, prompt, options).tokens, generated);
}

// Every decoder Linear but the routers stays FP8 with its block scales (read in place, not
// widened at load); the routers, embeddings and LM head are the checkpoint's bf16.
TEST_P(Fp8Fixture, WeightsStayFp8WithTheirBlockScales) {
  model::LoadedModel m = model::load_model(kFixtures / GetParam());
  int fp8 = 0;
  model::for_each_linear(m.transformer->weights(), [&](const model::Linear& l, model::WeightPart part) {
    if (part == model::WeightPart::kRouter || part == model::WeightPart::kLmHead) {
      EXPECT_EQ(l.weight.dtype(), DType::kBF16);
      return;
    }
    EXPECT_EQ(l.weight.dtype(), DType::kF8E4M3);
    ASSERT_TRUE(l.fp8());
    EXPECT_EQ(l.block_scales.dim(0), (l.out_features() + l.block_rows - 1) / l.block_rows);
    EXPECT_EQ(l.block_scales.dim(1), (l.in_features() + l.block_cols - 1) / l.block_cols);
    ++fp8;
  });
  EXPECT_GT(fp8, 40);
}

// The size estimate (moe inspect, the tiers) counts FP8 projections at a byte and a scale a block,
// as stored: within 1% of the checkpoint's bytes for the dense part and exact for an expert.
TEST_P(Fp8Fixture, WeightBytesCountFp8AsStored) {
  const auto dir = kFixtures / GetParam();
  const model::WeightBytes estimate = model::weight_bytes(loading::load_model_config(dir));
  const loading::Checkpoint checkpoint = loading::Checkpoint::open(dir);
  uint64_t dense = 0, experts = 0;
  for (const std::string& name : checkpoint.names())
    (name.find(".experts.") != std::string::npos ? experts : dense) += checkpoint.info(name).nbytes();
  EXPECT_NEAR(double(estimate.resident), double(dense), 0.01 * double(dense));
  EXPECT_EQ(estimate.all_experts, experts);
}

// Prefill equals step-by-step decode, bit for bit.
TEST_P(Fp8Fixture, PrefillEqualsStepByStepDecode) {
  const auto dir = kFixtures / GetParam();
  model::LoadedModel m = model::load_model(dir);
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt");
  model::KvCache all = m.transformer->make_cache(int64_t(prompt.size()));
  const std::vector<float> together = m.transformer->forward(prompt, all, model::LogitsWanted::kAll);
  model::KvCache one = m.transformer->make_cache(int64_t(prompt.size()));
  const int64_t vocab = m.config.vocab_size;
  for (size_t i = 0; i < prompt.size(); ++i) {
    const std::vector<float> step = m.transformer->forward(std::span(&prompt[i], 1), one);
    ASSERT_EQ(std::memcmp(step.data(), together.data() + int64_t(i) * vocab, sizeof(float) * size_t(vocab)), 0) << i;
  }
}

// The offloading executor on CPU virtual devices at every expert budget, from one slot to all
// experts, on one and two devices, gives the resident run's bits; the slots hold FP8 bytes.
TEST_P(Fp8Fixture, OffloadedAtEveryBudgetGivesTheResidentBits) {
  const auto dir = kFixtures / GetParam();
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt");
  model::LoadedModel m = model::load_model(dir);
  model::Transformer& t = *m.transformer;
  const std::vector<float> reference = all_logits(t, prompt);
  const offload::ExpertLayout layout = offload::ExpertBacking(t.weights()).layout();
  EXPECT_EQ(layout.up.dtype, DType::kF8E4M3);
  EXPECT_EQ(layout.format(), fmt::format("fp8:{}x{}", m.config.fp8.block_rows, m.config.fp8.block_cols));
  const int experts = m.config.num_experts * m.config.num_sparse_layers();
  for (int devices : {1, 2})
    for (int slots = 1; slots <= experts; ++slots) {
      offload::OffloadOptions o;
      o.devices = devices;
      o.device_bytes = uint64_t(slots) * layout.bytes;
      o.host_bytes = 2 * layout.bytes;
      offload::OffloadedExperts runner(t, o, offload::make_predictor(slots % 2 ? "none" : "next-layer", t, nullptr));
      t.set_expert_runner(&runner);
      const std::vector<float> got = all_logits(t, prompt);
      t.set_expert_runner(nullptr);
      EXPECT_TRUE(same_bits(got, reference)) << devices << " devices, " << slots << " slots";
      if (slots < experts / devices) {
        EXPECT_GT(runner.stats().offloaded_uses, 0u);
      }
    }
}

// moe pack keeps FP8 experts as FP8 (their blobs hold each matrix's bytes and then its block
// scales, where a slot has them) beside int8/int4 copies of their dequantised values: the
// folder's bits from the store resident and offloaded from it at every budget, and fewer bytes
// per expert than bf16 would take.
TEST_P(Fp8Fixture, PackedStoreKeepsFp8AndGivesTheFoldersBits) {
  const auto dir = kFixtures / GetParam();
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt");
  model::LoadedModel folder = model::load_model(dir);
  const std::vector<float> reference = all_logits(*folder.transformer, prompt);
  const auto path = fs::temp_directory_path() / ("moe_fp8_" + GetParam() + "_" + std::to_string(::getpid()) + ".moe");
  offload::PackOptions pack;
  pack.extra_formats = {QuantFormat{DType::kI8, 8}, QuantFormat{DType::kI4, 8}};
  const offload::PackSummary summary = offload::pack_store(dir, path, offload::store_layout_for(folder.config), pack);
  const std::string native = fmt::format("fp8:{}x{}", folder.config.fp8.block_rows, folder.config.fp8.block_cols);
  ASSERT_EQ(summary.format_bytes.size(), 3u);
  EXPECT_EQ(summary.format_bytes[0].first, native);
  EXPECT_EQ(summary.format_bytes[1].first, "int8:g8");
  const int64_t h = folder.config.hidden_size, I = folder.config.moe_intermediate_size;
  const uint64_t experts = uint64_t(folder.config.num_experts * folder.config.num_sparse_layers());
  EXPECT_LT(summary.format_bytes[0].second, experts * uint64_t(3 * h * I) * 2 * 3 / 4) << "FP8 blobs: under 3/4 of bf16's bytes";
  {
    model::LoadedModel packed = model::load_model(path);
    model::Transformer& t = *packed.transformer;
    EXPECT_TRUE(same_bits(all_logits(t, prompt), reference));
    const auto store = dynamic_cast<const offload::StoreWeightSource&>(*packed.source).store();
    const offload::ExpertLayout layout = offload::ExpertBacking(t.weights(), store).layout();
    EXPECT_EQ(layout.format(), native);
    for (int slots : {1, 3, int(experts)}) {
      offload::OffloadOptions o;
      o.store = store;
      o.device_bytes = uint64_t(slots) * layout.bytes;
      o.host_bytes = uint64_t(slots % 2) * layout.bytes;
      offload::OffloadedExperts runner(t, o, offload::make_predictor("next-layer", t, nullptr));
      EXPECT_TRUE(runner.experts_from_store());
      EXPECT_EQ(runner.expert_format(), native);
      t.set_expert_runner(&runner);
      EXPECT_TRUE(same_bits(all_logits(t, prompt), reference)) << slots << " slots";
      t.set_expert_runner(nullptr);
      if (slots < int(experts)) {
        EXPECT_GT(runner.stats().nvme_reads, 0u);
      }
    }
  }
  // The int8 copies, used as they are, give the bits of int8 converted at load from the FP8 values.
  model::LoadOptions int8;
  int8.weights = model::parse_weight_format("int8:8", "experts");
  const std::vector<float> converted = all_logits(*model::load_model(dir, int8).transformer, prompt);
  const std::vector<float> copies = all_logits(*model::load_model(path, int8).transformer, prompt);
  EXPECT_TRUE(same_bits(copies, converted));
  EXPECT_LT(relative_error(converted, testing::expected_logits(dir)), 0.05);
  fs::remove(path);
}

std::string fixture_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) if (c == '-') c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(DeepSeekV3, Fp8Fixture, ::testing::Values("deepseek_v3-fp8", "deepseek_v3-fp8-blocks"), fixture_name);
// Qwen3-30B-A3B-FP8's and GLM-4.5-Air-FP8's layout: the same blocks over grouped-query attention
// (q/k/v/o FP8, GLM's biases bf16), one dense layer, partial edge blocks.
INSTANTIATE_TEST_SUITE_P(Qwen3AndGlm, Fp8Fixture, ::testing::Values("qwen3_moe-fp8", "glm4_moe-fp8"), fixture_name);

// Synthetic weights of an FP8 config (moe bench decode --config) are FP8 where the releases are,
// and run: finite logits, the FP8 expert layout.
TEST(Fp8, SyntheticWeightsOfAnFp8ConfigAreFp8) {
  const loading::ModelConfig config = loading::load_model_config(kFixtures / "deepseek_v3-fp8");
  model::LoadedModel m = model::load_model(config, std::make_shared<model::SyntheticWeights>(config, 5));
  int fp8 = 0;
  model::for_each_linear(m.transformer->weights(), [&](const model::Linear& l, model::WeightPart part) {
    EXPECT_EQ(l.fp8(), part != model::WeightPart::kRouter && part != model::WeightPart::kLmHead);
    fp8 += l.fp8();
  });
  EXPECT_GT(fp8, 40);
  EXPECT_EQ(offload::ExpertBacking(m.transformer->weights()).layout().format(), "fp8:128x128");
  for (float v : all_logits(*m.transformer, {1, 2, 3})) ASSERT_TRUE(std::isfinite(v));
}

// A safetensors file as name -> (dtype, shape, bytes), rewritten after an edit.
struct StTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
using StTensors = std::map<std::string, StTensor>;

StTensors read_st(const fs::path& path) {
  const std::string file = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  const nlohmann::json header = nlohmann::json::parse(file.substr(8, n));
  StTensors out;
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    const auto offsets = t.at("data_offsets").get<std::vector<uint64_t>>();
    out[name] = {t.at("dtype").get<std::string>(), t.at("shape").get<std::vector<int64_t>>(),
                 file.substr(8 + n + offsets[0], offsets[1] - offsets[0])};
  }
  return out;
}

void write_st(const fs::path& path, const StTensors& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text << data;
}

// A copy of the 16 x 32 fixture with its tensors and config edited; the message loading gives.
std::string load_error(const std::function<void(StTensors&)>& edit_tensors,
                       const std::function<void(nlohmann::json&)>& edit_config = {}) {
  static int counter = 0;
  const fs::path src = kFixtures / "deepseek_v3-fp8-blocks";
  const fs::path dir = fs::temp_directory_path() / ("moe-fp8-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::create_directories(dir);
  StTensors tensors = read_st(src / "model.safetensors");
  edit_tensors(tensors);
  write_st(dir / "model.safetensors", tensors);
  nlohmann::json config = nlohmann::json::parse(read_file(src / "config.json"));
  if (edit_config) edit_config(config);
  std::ofstream(dir / "config.json") << config.dump();
  std::string message = "loaded";
  try {
    model::load_model(dir);
  } catch (const Error& e) {
    message = e.what();
  }
  fs::remove_all(dir);
  return message;
}

TEST(Fp8, MalformedCheckpointsGiveOneClearErrorNamingTheTensor) {
  const std::string kv_b = "model.layers.1.self_attn.kv_b_proj.weight";
  const std::string scales = "model.layers.1.self_attn.kv_b_proj.weight_scale_inv";
  const std::string expert = "model.layers.2.mlp.experts.3.down_proj.weight_scale_inv";
  const auto expect = [](const std::string& got, const std::string& says) {
    EXPECT_NE(got.find(says), std::string::npos) << got;
    EXPECT_EQ(got.find('\n'), std::string::npos) << got;
  };
  EXPECT_EQ(load_error([](StTensors&) {}), "loaded");
  expect(load_error([&](StTensors& t) { t.erase(scales); }),
         "lacks tensor '" + scales + "' (the block scales of the float8_e4m3fn '" + kv_b + "')");
  // A per-tensor scale where the block grid should be (AutoFP8 / compressed-tensors checkpoints).
  expect(load_error([&](StTensors& t) {
           t["model.layers.1.self_attn.kv_b_proj.weight_scale"] = t[scales];
           t.erase(scales);
         }),
         "tensor '" + kv_b + "' is float8_e4m3fn with a per-tensor or per-channel scale '" + kv_b +
             "_scale' (AutoFP8 / compressed-tensors); only block scales (weight_scale_inv");
  expect(load_error([&](StTensors& t) {
           t[expert].shape = {t[expert].shape[1], t[expert].shape[0]};  // [5, 1] -> [1, 5]
         }),
         "tensor '" + expert + "' has shape [1, 5]; blocks of 16 x 32 over the [72, 24] weight imply [5, 1]");
  expect(load_error([&](StTensors& t) {  // the same bytes as a [10, 1] grid of bf16
           t[expert].shape = {10, 1};
           t[expert].dtype = "BF16";
         }),
         "tensor '" + expert + "' has shape [10, 1]; blocks of 16 x 32 over the [72, 24] weight imply [5, 1]");
  expect(load_error([&](StTensors& t) {
           StTensor& s = t[scales];
           std::string bf16(s.bytes.size() / 2, '\0');
           s.dtype = "BF16";
           s.bytes = bf16;
         }),
         "tensor '" + scales + "' has dtype bf16; FP8 block scales are f32");
  expect(load_error([&](StTensors& t) {
           const float nan = std::nanf("");
           std::memcpy(t[scales].bytes.data() + 4, &nan, 4);
         }),
         "tensor '" + scales + "' holds a non-finite scale (nan) at block [1, 0]");
  expect(load_error([&](StTensors& t) { t["model.layers.1.mlp.gate.weight_scale_inv"] = t[scales]; }),
         "tensor 'model.layers.1.mlp.gate.weight_scale_inv' is given but 'model.layers.1.mlp.gate.weight' is bf16, not "
         "float8_e4m3fn");
  expect(load_error([](StTensors&) {}, [](nlohmann::json& c) { c.erase("quantization_config"); }),
         "float8_e4m3fn, but the config has no quantization_config with quant_method 'fp8'");
  expect(load_error([](StTensors&) {}, [](nlohmann::json& c) { c["quantization_config"]["fmt"] = "e5m2"; }),
         "quantization_config fmt 'e5m2' is not supported (e4m3 only)");
  // The same tensors under the releases' 128 x 128 blocks: the grid is the wrong shape.
  expect(load_error([](StTensors&) {}, [](nlohmann::json& c) { c["quantization_config"]["weight_block_size"] = {128, 128}; }),
         "blocks of 128 x 128 over the");
  // An FP8 norm (only Linears may be FP8).
  expect(load_error([](StTensors& t) {
           StTensor& n = t["model.norm.weight"];
           n.dtype = "F8_E4M3";
           n.bytes.resize(n.bytes.size() / 2);
         }),
         "tensor 'model.norm.weight' has dtype fp8; weights must be f32, bf16 or f16");
}

}  // namespace
}  // namespace moe
