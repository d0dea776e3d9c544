// The planner: every budget respected on every shipped profile, the predicted time no worse
// than the baselines', replication on several GPUs, impossible budgets refused; plan files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "placement/cost/model_shape.h"
#include "placement/hardware/hardware_profile.h"
#include "placement/plan/plan_nodes.h"
#include "placement/plan/planner.h"
#include "placement/trace/importers.h"
#include "runtime/core/error.h"

namespace moe::placement {
namespace {

const std::filesystem::path kRoot(MOE_SOURCE_DIR);

Trace mixtral_trace() {
  const auto shared = kRoot / ".." / "shared" / "data" / "traces" / "mixtral-8x7b" / "humaneval_2_routing.jsonl";
  if (std::filesystem::exists(shared)) return import_jsonl(shared, {});
  Trace t;  // a stand-in with the same shape when the shared data is absent
  t.model = {"mixtral", 32, 8, 2};
  for (int i = 0; i < 64; ++i) {
    TokenRecord r{0, i, {}};
    for (int l = 0; l < 32; ++l) r.layers.push_back({l, {(i + l) % 8, (i * 3 + l + 1) % 8}, {}});
    t.tokens.push_back(r);
  }
  return t;
}

void expect_within_budgets(const PlacementPlan& plan, const HardwareProfile& hw) {
  EXPECT_NO_THROW(validate_plan(plan, "plan"));
  for (const auto& d : plan.devices()) {
    const int64_t used = d.dense_bytes() + d.kv_cache_bytes() + d.workspace_bytes() + d.pinned_expert_bytes() + d.cache_bytes();
    EXPECT_LE(used, int64_t(hw.gpu_memory_bytes)) << hw.name;
    EXPECT_GT(d.kv_cache_bytes(), 0);
  }
  std::vector<int64_t> host(size_t(plan_node_count(plan)), 0);  // each node's pool (one for older plans)
  for (const auto& e : plan.experts())
    if (e.home() == proto::TIER_HOST) host[size_t(plan_node_of(plan, e.devices(0)))] += plan_expert_bytes(plan, e.format());
  for (int64_t bytes : host) EXPECT_LE(bytes, plan.host_pool_bytes());
  EXPECT_LE(plan.host_pool_bytes(), int64_t(hw.host_memory_bytes));
  EXPECT_GT(plan.prediction().tokens_per_second(), 0);
}

TEST(Planner, RespectsEveryBudgetOnEveryProfile) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  const Trace trace = mixtral_trace();
  for (const auto& entry : std::filesystem::directory_iterator(kRoot / "configs" / "hardware")) {
    const HardwareProfile hw = load_hardware_profile(entry.path().string());
    for (int batch : {1, 8}) {
      PlannerOptions o;
      o.batch = batch;
      o.context = 2048;
      try {
        const PlacementPlan plan = make_plan(shape, trace, hw, o);
        expect_within_budgets(plan, hw);
        EXPECT_EQ(plan.devices_size(), hw.gpu_count);
      } catch (const Error& e) {
        // Only the 8 GB laptop may be too small for Mixtral's dense weights and KV cache.
        EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
        EXPECT_LT(hw.gpu_memory_bytes, 10e9) << hw.name << ": " << e.what();
      }
    }
  }
}

TEST(Planner, BeatsOrMatchesTheBaselines) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  const Trace trace = mixtral_trace();
  const HardwareProfile hw = load_hardware_profile("rtx4090-24gb");
  PlannerOptions o;
  const double optimized = make_plan(shape, trace, hw, o).prediction().tokens_per_second();
  for (const char* baseline : {"frequency", "uniform"}) {
    o.strategy = baseline;
    const PlacementPlan plan = make_plan(shape, trace, hw, o);
    expect_within_budgets(plan, hw);
    EXPECT_GE(optimized, plan.prediction().tokens_per_second() * (1 - 1e-9)) << baseline;
  }
  // Lossy formats, when allowed, put more experts on the GPU.
  o.strategy = "optimized";
  o.formats = {ExpertFormat::kBF16, ExpertFormat::kInt4};
  const PlacementPlan int4 = make_plan(shape, trace, hw, o);
  expect_within_budgets(int4, hw);
  EXPECT_GT(int4.prediction().tokens_per_second(), optimized);
}

// Two requests whose routing differs: the first on experts 0 and 1 of every layer, the second on
// 6 and 7 (and a little of everything in both).
Trace shifting_trace() {
  Trace t;
  t.model = {"mixtral", 32, 8, 2};
  for (int s = 0; s < 2; ++s)
    for (int i = 0; i < 48; ++i) {
      TokenRecord r{s, i, {}};
      for (int l = 0; l < 32; ++l)
        r.layers.push_back(i % 4 == 3 ? LayerRouting{l, {(i + l) % 8, (i + l + 3) % 8}, {}, {}}
                                      : LayerRouting{l, {s == 0 ? 0 : 6, s == 0 ? 1 : 7}, {}, {}});
      t.tokens.push_back(r);
    }
  return t;
}

TEST(Planner, ChoosesByHeldOutRoutingAndNeverLosesToUniformThere) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  const HardwareProfile hw = load_hardware_profile("rtx4090-24gb");
  const PlacementPlan plan = make_plan(shape, shifting_trace(), hw, {});
  expect_within_budgets(plan, hw);
  std::string held_out;
  for (const std::string& line : plan.explanation())
    if (line.rfind("Held out:", 0) == 0) held_out = line;
  ASSERT_FALSE(held_out.empty());
  EXPECT_NE(held_out.find("planned on 1 sequences (48 tokens), judged on the other 1 (48 tokens)"), std::string::npos) << held_out;
  double trace_plan = 0, uniform = 0;
  ASSERT_EQ(std::sscanf(held_out.c_str() + held_out.find("optimized "), "optimized %lf tokens/s, uniform %lf", &trace_plan, &uniform), 2);
  // Pinning the first request's experts would miss the second's: the held-out choice keeps a
  // cache (or takes the uniform plan), and is never below the uniform plan there.
  if (plan.strategy() == "optimized") EXPECT_GE(trace_plan, uniform);
  else EXPECT_EQ(plan.strategy(), "optimized (uniform won on held-out routing)");
  // Held out, a pin of the first request's experts never pays for the slots it takes from the
  // cache that follows the second: every GPU byte is cache.
  int pinned = 0;
  for (const auto& e : plan.experts()) pinned += e.home() == proto::TIER_GPU;
  EXPECT_EQ(pinned, 0);
}

TEST(Planner, AFixedPinnedShareHoldsForTheUniformPlanToo) {
  // The uniform plan is the held-out baseline: with --pinned-share 0 it must pin nothing either,
  // or "uniform won" would hand back a plan pinning half the memory the user kept for the cache.
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  const HardwareProfile hw = load_hardware_profile("rtx4090-24gb");
  for (const char* strategy : {"uniform", "optimized"}) {
    PlannerOptions o;
    o.strategy = strategy;
    o.pinned_share = 0;
    const PlacementPlan plan = make_plan(shape, shifting_trace(), hw, o);
    int pinned = 0;
    for (const auto& e : plan.experts()) pinned += e.home() == proto::TIER_GPU;
    EXPECT_EQ(pinned, 0) << strategy;
  }
}

TEST(Planner, SaysWhenNothingCanBeHeldOut) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  Trace one = shifting_trace();
  one.tokens.resize(48);  // the first request alone
  const PlacementPlan plan = make_plan(shape, one, load_hardware_profile("rtx4090-24gb"), {});
  EXPECT_EQ(plan.explanation(plan.explanation_size() - 1), "Held out: nothing (the trace holds one sequence): every figure here is in-sample.");
}

TEST(Planner, ReplicatesHotExpertsAcrossGpusWhenMemoryAllows) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  const HardwareProfile hw = load_hardware_profile("h100-sxm-80gb-x4-nvlink");
  const PlacementPlan plan = make_plan(shape, mixtral_trace(), hw, {});
  expect_within_budgets(plan, hw);
  int replicated = 0, max_copies = 0;
  for (const auto& e : plan.experts()) {
    EXPECT_EQ(e.home(), proto::TIER_GPU);
    replicated += e.devices_size() > 1;
    max_copies = std::max(max_copies, e.devices_size());
  }
  EXPECT_GT(replicated, 0);
  EXPECT_LE(max_copies, 4);
  // The hottest expert has at least as many copies as the coldest.
  const auto by_load = [&](bool hottest) {
    const proto::ExpertPlacement* pick = &plan.experts(0);
    for (const auto& e : plan.experts())
      if (hottest ? e.expected_load() > pick->expected_load() : e.expected_load() < pick->expected_load()) pick = &e;
    return pick->devices_size();
  };
  EXPECT_GE(by_load(true), by_load(false));
}

TEST(Planner, RefusesImpossibleBudgetsInOneSentence) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  const HardwareProfile hw = load_hardware_profile("rtx4090-24gb");
  PlannerOptions o;
  o.batch = 64;
  o.context = 32768;  // a 256 GiB KV cache
  try {
    make_plan(shape, mixtral_trace(), hw, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("KV cache"), std::string::npos) << e.what();
  }
  o = {};
  o.devices = 3;
  EXPECT_THROW(make_plan(shape, mixtral_trace(), hw, o), Error);
  o = {};
  o.devices = -1;  // was all of the profile's
  EXPECT_THROW(make_plan(shape, mixtral_trace(), hw, o), Error);
  o = {};
  o.pinned_share = std::nan("");  // was planned with
  EXPECT_THROW(make_plan(shape, mixtral_trace(), hw, o), Error);
  Trace wrong = mixtral_trace();
  wrong.model.num_experts = 16;
  EXPECT_THROW(make_plan(shape, wrong, hw, {}), Error);
}

// A made-up trace of `shape`'s layers and experts (two experts a token, spread over all of them).
Trace trace_of(const ModelShape& shape, int tokens) {
  Trace t;
  t.model = {shape.name, shape.num_sparse_layers, shape.num_experts, 2};
  for (int i = 0; i < tokens; ++i) {
    TokenRecord r{i % 2, i, {}};
    for (int l = 0; l < shape.num_sparse_layers; ++l)
      r.layers.push_back({l, {(i * 7 + l) % shape.num_experts, (i * 7 + l + 1 + i % 5) % shape.num_experts}, {}});
    t.tokens.push_back(r);
  }
  return t;
}

// The shipped configs say their release's formats (quantization_config): DeepSeek-V3 and Kimi-K2
// FP8 experts and dense projections (a byte a weight and an f32 scale per 128 x 128 block),
// gpt-oss MXFP4 experts (4.25 bits), the rest bf16. A plan in FP8 records the expert's size,
// keeps every budget, and round-trips through its file.
TEST(Planner, ReleasedFormatsFromTheConfigs) {
  const auto shape_of = [](const char* name) {
    return load_model_shape((kRoot / "configs" / "models" / (std::string(name) + ".json")).string());
  };
  const ModelShape v3 = shape_of("deepseek-v3");
  EXPECT_EQ(v3.released_format, ExpertFormat::kFp8);
  EXPECT_EQ(v3.released_dense_format, ExpertFormat::kFp8);
  const int64_t v3_params = int64_t(3) * 7168 * 2048;
  EXPECT_EQ(v3.expert_bytes(ExpertFormat::kFp8), v3_params + 4 * 3 * 56 * 16);  // 7168 / 128 x 2048 / 128 blocks a matrix
  EXPECT_EQ(v3.expert_bytes(ExpertFormat::kBF16), 2 * v3_params);
  EXPECT_LT(v3.dense_bytes(ExpertFormat::kFp8), v3.dense_bytes(ExpertFormat::kBF16) * 6 / 10);
  EXPECT_GT(v3.dense_bytes(ExpertFormat::kFp8), v3.dense_bytes(ExpertFormat::kBF16) / 2);  // embeddings stay bf16
  EXPECT_EQ(shape_of("kimi-k2").released_format, ExpertFormat::kFp8);
  for (const char* name : {"gpt-oss-20b", "gpt-oss-120b"}) {
    const ModelShape g = shape_of(name);
    EXPECT_EQ(g.released_format, ExpertFormat::kMxfp4) << name;
    EXPECT_EQ(g.released_dense_format, ExpertFormat::kBF16) << name;
    EXPECT_EQ(g.expert_bytes(ExpertFormat::kMxfp4), g.expert_params / 2 + g.expert_params / 32) << name;
    EXPECT_THROW(g.dense_bytes(ExpertFormat::kMxfp4), Error);
  }
  for (const char* name : {"qwen3-30b-a3b", "qwen3-235b-a22b", "glm-4.5", "glm-4.5-air", "mixtral-8x7b"})
    EXPECT_EQ(shape_of(name).released_format, ExpertFormat::kBF16) << name;
  for (const char* name : {"bf16", "int8", "int4", "fp8", "mxfp4"}) EXPECT_STREQ(format_name(parse_expert_format(name)), name);
  EXPECT_THROW(parse_expert_format("fp4"), Error);

  const HardwareProfile hw = load_hardware_profile("h100-sxm-80gb-x8-nvlink");
  PlannerOptions o;
  o.formats = {ExpertFormat::kFp8};
  o.dense_format = ExpertFormat::kFp8;
  const PlacementPlan plan = make_plan(v3, trace_of(v3, 24), hw, o);
  expect_within_budgets(plan, hw);
  EXPECT_EQ(plan.expert_bytes_fp8(), v3.expert_bytes(ExpertFormat::kFp8));
  int64_t pinned = 0;
  for (const auto& e : plan.experts()) {
    EXPECT_EQ(e.format(), proto::FORMAT_FP8);
    if (e.home() == proto::TIER_GPU) pinned += e.devices_size() * v3.expert_bytes(ExpertFormat::kFp8);
  }
  int64_t claimed = 0;
  for (const auto& d : plan.devices()) claimed += d.pinned_expert_bytes();
  EXPECT_EQ(pinned, claimed);
  EXPECT_GT(pinned, 0);
  const auto path = std::filesystem::temp_directory_path() / "moe_plan_fp8_test.plan";
  save_plan(path, plan);
  EXPECT_EQ(load_plan(path).SerializeAsString(), plan.SerializeAsString());
  std::filesystem::remove(path);
  PlacementPlan unsized = plan;  // an FP8 expert without the size is refused
  unsized.set_expert_bytes_fp8(0);
  EXPECT_THROW(validate_plan(unsized, "plan"), Error);
}

TEST(PlanFile, RoundTripsAndRejectsBrokenPlans) {
  const ModelShape shape = load_model_shape((kRoot / "configs" / "models" / "mixtral-8x7b.json").string());
  const PlacementPlan plan = make_plan(shape, mixtral_trace(), load_hardware_profile("rtx4090-24gb"), {});
  const auto path = std::filesystem::temp_directory_path() / "moe_plan_test.plan";
  save_plan(path, plan);
  EXPECT_TRUE(is_plan_file(path));
  EXPECT_EQ(load_plan(path).SerializeAsString(), plan.SerializeAsString());
  EXPECT_NE(plan_to_json(plan).find("\"experts\""), std::string::npos);

  const auto rejects = [&](PlacementPlan broken, const std::string& needle) {
    try {
      validate_plan(broken, "broken");
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  PlacementPlan p = plan;
  p.mutable_experts(1)->set_expert(plan.experts(0).expert());
  p.mutable_experts(1)->set_layer(plan.experts(0).layer());
  rejects(p, "twice");
  p = plan;
  p.mutable_devices(0)->set_cache_bytes(p.devices(0).memory_bytes());
  rejects(p, "over its budget");
  p = plan;
  p.mutable_experts(0)->set_devices(0, 5);
  rejects(p, "device 5");
  p = plan;
  p.mutable_experts()->RemoveLast();
  rejects(p, "places");
  // Truncated and foreign files.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (size_t cut : {size_t(4), size_t(8), bytes.size() / 2, bytes.size() - 1}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, cut);
    EXPECT_THROW(load_plan(path), Error) << cut;
  }
  // A flipped byte anywhere past the magic is caught by the checksum (it often still parses).
  int caught = 0;
  for (size_t at = 8; at < bytes.size(); at += std::max<size_t>(1, bytes.size() / 97)) {
    std::string flipped = bytes;
    flipped[at] ^= 0x04;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << flipped;
    try {
      load_plan(path);
      ADD_FAILURE() << "a flip at byte " << at << " went unnoticed";
    } catch (const Error& e) {
      ++caught;
    }
  }
  EXPECT_GT(caught, 50);
}

}  // namespace
namespace {

// The parameters a safetensors file holds, from its header (the count the shapes must explain).
int64_t stored_parameters(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  uint64_t header_bytes = 0;
  in.read(reinterpret_cast<char*>(&header_bytes), sizeof header_bytes);
  std::string header(header_bytes, '\0');
  in.read(header.data(), std::streamsize(header_bytes));
  int64_t total = 0;
  const nlohmann::json tensors = nlohmann::json::parse(header);
  for (const auto& [name, entry] : tensors.items()) {
    if (name == "__metadata__") continue;
    int64_t n = 1;
    for (const auto& d : entry["shape"]) n *= d.get<int64_t>();
    total += n;
  }
  return total;
}

}  // namespace

TEST(ModelShape, CountsEveryStoredParameterOfTheSeedFamilies) {
  for (const char* fixture : {"mixtral", "ds_moe", "ds_moe-att2", "bam-expert-kv", "bam-shared-kv"}) {
    const auto dir = kRoot / "tests" / "fixtures" / fixture;
    const ModelShape s = load_model_shape(dir.string());
    EXPECT_EQ(s.dense_params + int64_t(s.num_sparse_layers) * s.num_experts * s.expert_params,
              stored_parameters(dir / "model.safetensors"))
        << fixture;
  }
}

TEST(ModelShape, DsMoePresetsHaveThePapersTable1Shapes) {
  struct Row {
    const char* preset;
    int64_t hidden, layers, attention_experts, heads_per_expert, head_dim, ffn_width;
  };
  for (const Row& r : {Row{"ds-moe-1b", 2048, 24, 16, 2, 64, 256}, Row{"ds-moe-3b", 3072, 28, 8, 4, 96, 384},
                       Row{"ds-moe-6b", 4096, 36, 8, 4, 128, 512}}) {
    const loading::ModelConfig c = loading::load_model_config(kRoot / "configs" / "models" / (std::string(r.preset) + ".json"));
    EXPECT_EQ(c.hidden_size, r.hidden) << r.preset;
    EXPECT_EQ(c.num_layers, r.layers) << r.preset;
    EXPECT_EQ(c.ds_moe.attention_experts, r.attention_experts) << r.preset;
    EXPECT_EQ(c.num_heads / c.ds_moe.attention_experts, r.heads_per_expert) << r.preset;
    EXPECT_EQ(c.head_dim, r.head_dim) << r.preset;
    EXPECT_EQ(c.num_kv_heads, r.preset == std::string("ds-moe-1b") ? 2 : 4) << r.preset;  // GQA, section 4.1
    EXPECT_EQ(c.num_experts, 32) << r.preset;
    EXPECT_EQ(c.moe_intermediate_size, r.ffn_width) << r.preset;
  }
}

}  // namespace moe::placement

