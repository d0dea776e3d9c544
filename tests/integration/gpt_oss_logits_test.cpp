// gpt-oss against Hugging Face transformers: the tiny random checkpoints of
// tests/reference/make_hf_gpt_oss_fixtures.py (bf16 experts; MXFP4 experts in the released
// blocks + scales layout, read in place), their logits and greedy continuations, with attention
// sinks, sliding and full layers whose window lies inside the prompt, YaRN with and without
// truncation, biased experts with the clamped SwiGLU and the router's top-k softmax. Prefill
// equals step-by-step decode and batched decode through the scheduler; moe pack cuts the experts
// into blobs (slices of the fused tensors: MXFP4 as released, bf16 transposed); offloaded at every
// budget (from the folder or the store) they give the resident bits; the store's int8/int4 copies give the bits of
// the format converted at load.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <map>

#include "offload/executor/expert_backing.h"
#include "offload/executor/offloaded_experts.h"
#include "offload/executor/predictor.h"
#include "offload/store/expert_store.h"
#include "offload/store/model_layout.h"
#include "offload/store/store_writer.h"
#include "runtime/engine/engine.h"
#include "runtime/model/gpt_oss.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/resident_experts.h"
#include "runtime/model/weight_walk.h"
#include "tests/integration/hf_fixture.h"
#include "tests/integration/offload_fixture.h"

namespace moe {
namespace {

using testing::all_logits;
using testing::expected_ints;
using testing::kFixtures;
using testing::offloaded_logits;
using testing::same_bits;

class GptOssFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(GptOssFixture, LogitsAndGreedyTokensMatchTransformers) {
  const auto dir = kFixtures / GetParam();
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt"), generated = expected_ints(dir, "generated");
  model::LoadedModel m = model::load_model(dir);
  ASSERT_EQ(m.config.family, loading::ModelFamily::kGptOss);
  // The prompt is longer than the window: the sliding layers see fewer keys than the full ones.
  ASSERT_GT(m.config.sliding_window, 0);
  ASSERT_LT(m.config.sliding_window, int(prompt.size()));
  const std::vector<float> logits = all_logits(*m.transformer, prompt);
  const Tensor reference = testing::expected_logits(dir);
  ASSERT_EQ(int64_t(logits.size()), reference.numel());
  double max_diff = 0;
  for (size_t i = 0; i < logits.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(logits[i] - reference.data<float>()[i])));
  const double error = testing::relative_error(logits, reference);
  RecordProperty("relative_error", std::to_string(error));
  std::printf("%s: max |logit - transformers| = %.3g, relative to max |transformers| %.3g\n", GetParam().c_str(), max_diff,
              error);
  EXPECT_LT(error, 1e-5);

  model::GenerationOptions options;
  options.max_new_tokens = int(generated.size());
  EXPECT_EQ(model::generate(*m.transformer, prompt, options).tokens, generated);
}

INSTANTIATE_TEST_SUITE_P(GptOss, GptOssFixture, ::testing::Values("gpt_oss", "gpt_oss-mxfp4"), [](const auto& param_info) {
  std::string name = param_info.param;
  for (char& c : name) if (c == '-') c = '_';
  return name;
});

// The fixtures' configs as GptOssConfig wrote them: layer_types, YaRN's truncate, the SwiGLU's
// constants, MXFP4 experts viewed as stored (u8 blocks and scales, no copy).
TEST(GptOss, ConfigAndExpertsAsStored) {
  model::LoadedModel bf16 = model::load_model(kFixtures / "gpt_oss");
  const loading::ModelConfig& b = bf16.config;
  EXPECT_EQ(b.window_of(0), 4);
  EXPECT_EQ(b.window_of(1), 0);
  EXPECT_EQ(b.window_of(2), 4);
  EXPECT_TRUE(b.rope.truncate);
  EXPECT_DOUBLE_EQ(b.gpt_oss.swiglu_alpha, 1.5);
  EXPECT_DOUBLE_EQ(b.gpt_oss.swiglu_limit, 2.0);
  EXPECT_FALSE(b.gpt_oss.mxfp4_experts);
  EXPECT_EQ(bf16.transformer->weights().layers[0].moe.gpt_oss.gate_up.dtype(), DType::kBF16);

  model::LoadedModel mx = model::load_model(kFixtures / "gpt_oss-mxfp4");
  const loading::ModelConfig& c = mx.config;
  EXPECT_EQ(c.window_of(0), 0);
  EXPECT_EQ(c.window_of(1), 3);
  EXPECT_FALSE(c.rope.truncate);
  EXPECT_DOUBLE_EQ(c.rope.factor, 32.0);
  EXPECT_TRUE(c.gpt_oss.mxfp4_experts);
  const model::GptOssExpertWeights& e = mx.transformer->weights().layers[1].moe.gpt_oss;
  ASSERT_TRUE(e.mxfp4());
  EXPECT_EQ(e.gate_up.dtype(), DType::kU8);
  EXPECT_EQ(e.gate_up.shape(), (Shape{6, 128, 3, 16}));
  EXPECT_EQ(e.down_scales.shape(), (Shape{6, 96, 2}));
  // In place: the blocks are the checkpoint's bytes.
  const auto file = loading::SafetensorsFile::open(kFixtures / "gpt_oss-mxfp4" / "model.safetensors");
  const Tensor stored = file.tensor("model.layers.1.mlp.experts.gate_up_proj_blocks");
  EXPECT_EQ(std::memcmp(stored.raw(), e.gate_up.raw(), stored.nbytes()), 0);
  // 4.25 bits a weight plus the biases: a little over a quarter of bf16's bytes per expert.
  const model::WeightBytes bytes = model::weight_bytes(c);
  EXPECT_EQ(bytes.per_expert, uint64_t(3 * 96 * 64 / 2 + 3 * 96 * 64 / 32 + (2 * 64 + 96) * 2));
}

// Every step is per token (sinks and windows included): prefill equals step-by-step decode.
TEST(GptOss, PrefillEqualsStepByStepDecode) {
  for (const char* name : {"gpt_oss", "gpt_oss-mxfp4"}) {
    model::LoadedModel m = model::load_model(kFixtures / name);
    const std::vector<int32_t> prompt = expected_ints(kFixtures / name, "prompt");
    const std::vector<float> together = all_logits(*m.transformer, prompt);
    model::KvCache one = m.transformer->make_cache(int64_t(prompt.size()));
    const int64_t vocab = m.config.vocab_size;
    for (size_t i = 0; i < prompt.size(); ++i) {
      const std::vector<float> step = m.transformer->forward(std::span(&prompt[i], 1), one);
      ASSERT_EQ(std::memcmp(step.data(), together.data() + int64_t(i) * vocab, sizeof(float) * size_t(vocab)), 0)
          << name << " position " << i;
    }
  }
}

// Batched decode through the scheduler over a shared paged pool gives each sequence its tokens alone.
TEST(GptOss, BatchedDecodeThroughTheSchedulerMatchesAlone) {
  const auto dir = kFixtures / "gpt_oss-mxfp4";
  model::LoadedModel m = model::load_model(dir);
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt"), generated = expected_ints(dir, "generated");
  std::vector<std::vector<int32_t>> prompts = {prompt, {5, 9, 200}, {77}, {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9}};
  model::GenerationOptions options;
  options.max_new_tokens = int(generated.size());
  EXPECT_EQ(testing::expect_batched_decode_matches_alone(*m.transformer, prompts, options, 4, 12)[0], generated);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    return e.what();
  }
  return "no error";
}

// The offloading executor cuts gpt-oss's fused experts into one slot each (gate_up with its bias,
// down with its bias, in the checkpoint's dtype: MXFP4 blocks and exponents as released) and
// computes the clamped SwiGLU there: every budget, one device or two, waiting or computing misses
// on the host, gives the resident bits.
TEST_P(GptOssFixture, OffloadedAtEveryBudgetGivesTheResidentBits) {
  const auto dir = kFixtures / GetParam();
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt");
  model::LoadedModel m = model::load_model(dir);
  model::Transformer& t = *m.transformer;
  const std::vector<float> reference = all_logits(t, prompt);
  const offload::ExpertLayout layout = offload::ExpertBacking(t.weights()).layout();
  const int64_t h = m.config.hidden_size, I = m.config.moe_intermediate_size;
  EXPECT_EQ(layout.gate.bytes, 0u);
  EXPECT_EQ(layout.up.rows, 2 * I);
  EXPECT_GT(layout.down_bias.bytes, 0u);
  if (m.config.gpt_oss.mxfp4_experts) {
    EXPECT_EQ(layout.format(), "mxfp4");
    EXPECT_LT(layout.bytes, uint64_t(3 * h * I * 2) / 3) << "MXFP4 slots: under a third of bf16's bytes";
  } else {
    EXPECT_EQ(layout.format(), "bf16");
  }
  const int experts = m.config.num_experts * m.config.num_sparse_layers();
  for (int devices : {1, 2})
    for (int slots = 1; slots <= experts; slots += slots < 4 ? 1 : 5) {
      offload::OffloadStats stats;
      EXPECT_TRUE(same_bits(offloaded_logits(t, prompt, slots, devices, slots == 2 ? "cpu" : "wait", {}, &stats), reference))
          << devices << " devices, " << slots << " slots";
      if (slots * devices < experts) {
        EXPECT_GT(stats.offloaded_uses, 0u) << devices << " devices, " << slots << " slots";
      }
    }
  // Prefill equals step-by-step decode offloaded too.
  offload::OffloadOptions o;
  o.device_bytes = 2 * layout.bytes;
  offload::OffloadedExperts runner(t, o, offload::make_predictor("none", t, nullptr));
  t.set_expert_runner(&runner);
  model::KvCache one = t.make_cache(int64_t(prompt.size()));
  const int64_t vocab = m.config.vocab_size;
  for (size_t i = 0; i < prompt.size(); ++i) {
    const std::vector<float> step = t.forward(std::span(&prompt[i], 1), one);
    ASSERT_EQ(std::memcmp(step.data(), reference.data() + int64_t(i) * vocab, sizeof(float) * size_t(vocab)), 0) << i;
  }
  t.set_expert_runner(nullptr);
}

// ResidentExperts (SwiGLU experts only) does not run gpt-oss's experts, nor does gpt-oss take
// another routing: each refuses in one sentence, and the model still runs.
TEST(GptOss, ResidentExpertsAndOtherRoutingAreRefusedClearly) {
  const auto dir = kFixtures / "gpt_oss-mxfp4";
  model::LoadedModel m = model::load_model(dir);
  model::Transformer& t = *m.transformer;
  model::ResidentExperts other(t.weights());
  EXPECT_NE(error_of([&] { t.set_expert_runner(&other); }).find("ResidentExperts cannot run them"), std::string::npos);
  EXPECT_NE(error_of([&] { t.set_routing_mode(model::parse_routing_mode("topk:2")); }).find("gpt_oss keeps its own routing"),
            std::string::npos);
  EXPECT_EQ(model::generate(t, expected_ints(dir, "prompt"), {}).tokens.empty(), false);
}

// moe pack writes int8/int4 copies of gpt-oss's experts beside the released ones: gate_up and
// down quantised per group (of the MXFP4 values widened), both biases in f32 and the clamped form
// kept. They give the bits of the same format converted at load from the folder (--weights), in
// place and offloaded from the store at 1 slot up to all on 1 and 2 devices; each blob records its error against
// the checkpoint, which moe inspect prints; HOBBIT's low-precision misses compute the store's
// int4 copy as a resident int4 expert does.
TEST_P(GptOssFixture, CopiesGiveTheBitsOfTheFormatConvertedAtLoad) {
  const auto dir = kFixtures / GetParam();
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt");
  const loading::ModelConfig config = loading::load_model_config(dir);
  const auto path =
      std::filesystem::temp_directory_path() / ("moe_copies_" + GetParam() + "_" + std::to_string(::getpid()) + ".moe");
  offload::PackOptions pack;
  pack.extra_formats = {QuantFormat{DType::kI8, 32}, QuantFormat{DType::kI4, 32}};
  const offload::PackSummary s = offload::pack_store(dir, path, offload::store_layout_for(config), pack);
  ASSERT_EQ(s.format_bytes.size(), 3u);
  EXPECT_EQ(s.format_bytes[1].first, "int8:g32");
  EXPECT_EQ(s.format_bytes[2].first, "int4:g32");
  const int experts = config.num_experts * config.num_sparse_layers();
  for (const char* format : {"int8:32", "int4:32"}) {
    model::LoadOptions options;
    options.weights = model::parse_weight_format(format, "experts");
    model::LoadedModel converted = model::load_model(dir, options), copies = model::load_model(path, options);
    ASSERT_EQ(converted.quantization.parts.size(), 1u);
    EXPECT_EQ(converted.quantization.parts[0].origin, "converted at load");
    ASSERT_EQ(copies.quantization.parts.size(), 1u);
    EXPECT_EQ(copies.quantization.parts[0].origin, "store copies");
    const model::GptOssExpertWeights& e = copies.transformer->weights().layers[1].moe.gpt_oss;
    ASSERT_EQ(e.cut.size(), size_t(config.num_experts));
    EXPECT_EQ(e.cut[2].up.weight.dtype(), format[3] == '8' ? DType::kI8 : DType::kI4);
    EXPECT_EQ(e.cut[2].down.bias.dtype(), DType::kF32);
    EXPECT_TRUE(e.cut[2].clamped());
    EXPECT_EQ(model::matrix_totals(copies.transformer->weights(), config).expert_bytes, double(e.cut[2].nbytes()))
        << "a token's expert weighs the copy's bytes";
    EXPECT_FALSE(converted.transformer->weights().layers[1].moe.gpt_oss.gate_up.defined()) << "the fused tensors went";
    const std::vector<float> reference = all_logits(*converted.transformer, prompt);
    EXPECT_TRUE(same_bits(all_logits(*copies.transformer, prompt), reference)) << format << " in place";
    const auto store = dynamic_cast<const offload::StoreWeightSource&>(*copies.source).store();
    EXPECT_EQ(offload::ExpertBacking(copies.transformer->weights(), store).format(), std::string(format).replace(4, 1, ":g"));
    for (int devices : {1, 2})
      for (int slots = 1; slots <= experts; slots += slots < 4 ? 1 : 5) {
        offload::OffloadStats stats;
        EXPECT_TRUE(same_bits(offloaded_logits(*copies.transformer, prompt, slots, devices, "wait", store, &stats), reference))
            << format << ", " << devices << " devices, " << slots << " slots from the store";
        if (slots * devices < experts) {
          EXPECT_GT(stats.nvme_reads, 0u) << format << ", " << devices << " devices, " << slots << " slots";
        }
        const std::string miss = slots == 2 ? "cpu" : "wait";
        EXPECT_TRUE(same_bits(offloaded_logits(*converted.transformer, prompt, slots, devices, miss), reference))
            << format << ", " << devices << " devices, " << slots << " slots converted at load";
      }
  }
  // What moe inspect prints: the released format exact, int8 within 1%, int4 coarser.
  const auto store = offload::ExpertStore::open(path);
  std::map<std::string, double> max_error;
  for (const auto& blob : store->manifest().experts())
    max_error[blob.format()] = std::max(max_error[blob.format()], blob.max_rel_error());
  EXPECT_EQ(max_error.at(s.format_bytes[0].first), 0.0);
  EXPECT_GT(max_error.at("int8:g32"), 0.0);
  EXPECT_LT(max_error.at("int8:g32"), 0.01);
  EXPECT_GT(max_error.at("int4:g32"), max_error.at("int8:g32"));
  // HOBBIT's low-precision copy: the store's int4 blob, computed with its biases and clamped form.
  {
    model::LoadOptions int4;
    int4.weights = model::parse_weight_format("int4:32", "experts");
    model::LoadedModel packed = model::load_model(path), quantised = model::load_model(path, int4);
    const offload::ExpertBacking backing(packed.transformer->weights(), offload::ExpertStore::open(path));
    ASSERT_EQ(backing.low_precision_format(), "int4:g32");
    std::vector<std::byte> buffer;
    const model::GatedMlpMatrices low = backing.read_low_precision({1, 2}, buffer);
    const model::GatedMlpMatrices want = model::matrices_of(quantised.transformer->weights().layers[1].moe.gpt_oss.cut[2]);
    const int64_t h = config.hidden_size;
    std::vector<float> x(size_t(3 * h)), got(x.size()), expected(x.size()), scratch;
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i));
    model::run_gated_mlp(low, x.data(), 3, got.data(), scratch);
    model::run_gated_mlp(want, x.data(), 3, expected.data(), scratch);
    EXPECT_TRUE(same_bits(got, expected));
    offload::OffloadOptions o;
    o.store = offload::ExpertStore::open(path);
    o.device_bytes = backing.layout().bytes;
    o.miss = "hobbit";
    o.hobbit_t1 = 2;  // every miss low precision, none skipped
    o.hobbit_t2 = 0;
    offload::OffloadedExperts runner(*packed.transformer, o, offload::make_predictor("none", *packed.transformer, nullptr));
    packed.transformer->set_expert_runner(&runner);
    for (float v : all_logits(*packed.transformer, prompt)) ASSERT_TRUE(std::isfinite(v));
    packed.transformer->set_expert_runner(nullptr);
    EXPECT_GT(runner.stats().low_precision, 0u);
  }
  std::filesystem::remove(path);
}

// moe pack cuts gpt-oss's experts into blobs, expert e being [e:e+1] of each fused tensor: MXFP4
// as released (blocks, e8m0 exponents), bf16 transposed to rows of outputs as the loader
// transposes them ("[e:e+1].T"), both biases in f32, where a slot has them (store version 2);
// the fused tensors are left out. Either store runs with the folder's bits, in place and
// offloaded from it, reading its blobs from the file, and is hardly larger than the checkpoint.
TEST(GptOss, PackCutsTheExpertsIntoBlobs) {
  for (const char* name : {"gpt_oss-mxfp4", "gpt_oss"}) {
    const auto dir = kFixtures / name;
    const std::vector<int32_t> prompt = expected_ints(dir, "prompt");
    model::LoadedModel m = model::load_model(dir);
    const std::vector<float> reference = all_logits(*m.transformer, prompt);
    const bool mxfp4 = m.config.gpt_oss.mxfp4_experts;
    const auto path =
        std::filesystem::temp_directory_path() / (std::string("moe_") + name + "_" + std::to_string(::getpid()) + ".moe");
    const offload::PackSummary s = offload::pack_store(dir, path, offload::store_layout_for(m.config), offload::PackOptions{});
    const uint64_t experts = uint64_t(m.config.num_experts * m.config.num_sparse_layers());
    ASSERT_EQ(s.format_bytes.size(), 1u);
    EXPECT_EQ(s.format_bytes[0].first, mxfp4 ? "mxfp4" : "bf16");
    EXPECT_LT(s.file_bytes, std::filesystem::file_size(dir / "model.safetensors") + experts * 4096 + 64 * 1024) << name;
    {
      model::LoadedModel packed = model::load_model(path);
      const model::GptOssExpertWeights& e = packed.transformer->weights().layers[1].moe.gpt_oss;
      EXPECT_EQ(e.mxfp4(), mxfp4);
      const auto store = dynamic_cast<const offload::StoreWeightSource&>(*packed.source).store();
      EXPECT_EQ(store->manifest().version(), 2u);
      const std::string fused = mxfp4 ? "gate_up_proj_blocks" : "gate_up_proj";
      EXPECT_FALSE(store->has_tensor("model.layers.1.mlp.experts." + fused));
      EXPECT_FALSE(e.gate_up.defined());
      ASSERT_EQ(e.cut.size(), size_t(m.config.num_experts));
      EXPECT_EQ(e.cut[2].up.weight.dtype(), mxfp4 ? DType::kMxfp4 : DType::kBF16);
      // The blob's gate_up is the checkpoint's expert 2: its bytes (MXFP4), or their transposition (bf16).
      const auto file = loading::SafetensorsFile::open(dir / "model.safetensors");
      const int64_t two_i = 2 * m.config.moe_intermediate_size, h = m.config.hidden_size;
      if (mxfp4) {
        const Tensor blocks = file.tensor("model.layers.1.mlp.experts.gate_up_proj_blocks");
        EXPECT_EQ(std::memcmp(e.cut[2].up.weight.raw(), blocks.data<uint8_t>() + 2 * e.cut[2].up.weight.nbytes(),
                              e.cut[2].up.weight.nbytes()), 0);
      } else {
        const Tensor w = file.tensor("model.layers.1.mlp.experts.gate_up_proj");  // [E, H, 2I]
        const auto* src = w.data<uint16_t>() + 2 * h * two_i;
        const auto* got = e.cut[2].up.weight.data<uint16_t>();  // [2I, H]
        bool transposed = true;
        for (int64_t r = 0; r < two_i; ++r)
          for (int64_t c = 0; c < h; ++c) transposed &= got[r * h + c] == src[c * two_i + r];
        EXPECT_TRUE(transposed);
      }
      EXPECT_TRUE(same_bits(all_logits(*packed.transformer, prompt), reference)) << name << " in place";
      EXPECT_TRUE(offload::ExpertBacking(packed.transformer->weights(), store).from_store());
      for (int slots : {1, 3}) {
        offload::OffloadStats stats;
        EXPECT_TRUE(same_bits(offloaded_logits(*packed.transformer, prompt, slots, 1, "wait", store, &stats), reference))
            << name << ", " << slots << " slots";
        EXPECT_GT(stats.nvme_reads, 0u) << name << ", " << slots;
      }
    }
    std::filesystem::remove(path);
  }
}

// The automatic tiers may offload a bf16 store's experts (read from its blobs), while a folder's
// stay in place: transposed at load, they live in the process's memory already. (Under a tight
// limit the split depends on the process's own pages, so the test reads the reasons only.)
TEST(GptOss, AutomaticTiersMayOffloadABf16StoresExperts) {
  const auto dir = kFixtures / "gpt_oss";
  const auto path = std::filesystem::temp_directory_path() / ("moe_tiers_gpt_oss_" + std::to_string(::getpid()) + ".moe");
  offload::pack_store(dir, path, offload::store_layout_for(loading::load_model_config(dir)), offload::PackOptions{});
  const auto placement = [](const std::filesystem::path& source, const std::string& limit) {
    model::LoadedModel m = model::load_model(source);
    engine::EngineOptions o;
    o.mem_limit = limit;
    const engine::Engine e(m, o, "gpt_oss");
    return e.placement_json();
  };
  const nlohmann::json store = placement(path, "64GiB");
  EXPECT_EQ(store["why"].dump().find("process's memory"), std::string::npos) << store.dump();
  const nlohmann::json folder = placement(dir, "64GiB");
  EXPECT_FALSE(folder["offload"].get<bool>()) << folder.dump();
  EXPECT_NE(folder["why"].dump().find("transposed at load"), std::string::npos) << folder.dump();
  std::filesystem::remove(path);
}

// The clamped SwiGLU and the router's softmax over the chosen logits, by their formulas.
TEST(GptOss, ClampedSwigluAndTopKSoftmax) {
  const float gate_up[8] = {-1.0f, 0.5f, 3.0f, -9.0f, 10.0f, 2.0f, 0.25f, 100.0f};  // (gate, up) pairs
  float out[4];
  model::clamped_swiglu(gate_up, 1, 4, 1.702f, 7.0f, out);
  const auto expect = [](float g, float u) {
    const float gc = std::min(g, 7.0f), uc = std::clamp(u, -7.0f, 7.0f);
    return (uc + 1.0f) * (gc / (1.0f + std::exp(-1.702f * gc)));
  };
  EXPECT_FLOAT_EQ(out[0], expect(-1.0f, 0.5f));
  EXPECT_FLOAT_EQ(out[1], expect(3.0f, -9.0f));  // up clamped to -7
  EXPECT_FLOAT_EQ(out[2], expect(7.0f, 2.0f));   // gate clamped to 7
  EXPECT_FLOAT_EQ(out[3], expect(0.25f, 7.0f));
  const float logits[5] = {0.1f, 2.0f, -1.0f, 1.5f, 1.9f};
  const model::RoutingDecision d = model::route_gpt_oss(logits, 1, 5, 3);
  ASSERT_EQ(d.experts, (std::vector<int32_t>{1, 3, 4}));
  const double z = std::exp(2.0) + std::exp(1.5) + std::exp(1.9);
  EXPECT_NEAR(d.weights[0], std::exp(2.0) / z, 1e-7);
  EXPECT_NEAR(d.weights[1], std::exp(1.5) / z, 1e-7);
  EXPECT_NEAR(d.weights[2], std::exp(1.9) / z, 1e-7);
}

}  // namespace
}  // namespace moe
