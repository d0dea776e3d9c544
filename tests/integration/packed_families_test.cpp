// Families whose experts are cut from fused tensors pack like any other: DS-MoE (each expert's
// rows of c_fc with their bias, columns of c_proj: the GeLU form) and MoE++ (gate and up fused
// in one up_proj). moe pack writes their bf16 experts and int8/int4 copies as blobs; a run from
// the store, in place or offloaded from it at several budgets, gives the folder's bits, and
// the copies give the bits of the same format converted at load (a store of MoE++ is version 1,
// DS-MoE's GeLU form version 2). Gated experts of an activation
// other than SiLU (mixtral-gelu) offload with the folder's bits too.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>

#include "offload/executor/expert_backing.h"
#include "offload/executor/offloaded_experts.h"
#include "offload/executor/predictor.h"
#include "offload/store/expert_store.h"
#include "offload/store/model_layout.h"
#include "offload/store/store_format.h"
#include "offload/store/store_writer.h"
#include "runtime/loading/safetensors.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/weight_format.h"
#include "tests/integration/hf_fixture.h"
#include "tests/integration/offload_fixture.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::all_logits;
using testing::expected_ints;
using testing::kFixtures;
using testing::offloaded_logits;
using testing::same_bits;

// Routing that varies the experts a token uses (DS-MoE's default is dense), so offloading misses.
void set_routing(model::Transformer& t, const std::string& fixture) {
  if (fixture == "ds_moe") t.set_routing_mode(model::parse_routing_mode("threshold:1"));
}

class PackedFamily : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = kFixtures / GetParam();
    prompt_ = expected_ints(dir_, "prompt");
    path_ = fs::temp_directory_path() / ("moe_packed_" + GetParam() + "_" + std::to_string(::getpid()) + ".moe");
  }
  void TearDown() override { fs::remove(path_); }
  fs::path dir_, path_;
  std::vector<int32_t> prompt_;
};

TEST_P(PackedFamily, StoreRunsWithTheFoldersBitsInPlaceAndOffloaded) {
  model::LoadedModel folder = model::load_model(dir_);
  set_routing(*folder.transformer, GetParam());
  const std::vector<float> reference = all_logits(*folder.transformer, prompt_);
  offload::PackOptions pack;
  pack.extra_formats = {QuantFormat{DType::kI8, 16}, QuantFormat{DType::kI4, 16}};
  const offload::PackSummary summary = offload::pack_store(dir_, path_, offload::store_layout_for(folder.config), pack);
  ASSERT_EQ(summary.format_bytes.size(), 3u);
  EXPECT_EQ(summary.format_bytes[0].first, "bf16");
  EXPECT_EQ(summary.format_bytes[1].first, "int8:g16");
  EXPECT_EQ(summary.format_bytes[2].first, "int4:g16");
  const uint64_t experts = uint64_t(folder.config.num_experts) * uint64_t(folder.config.num_sparse_layers());
  // Every expert's bytes once: the fused tensors they were cut from are not kept beside them.
  EXPECT_LT(summary.resident_bytes + summary.format_bytes[0].second,
            fs::file_size(dir_ / "model.safetensors") + experts * 3 * 64 + 64 * 1024);

  model::LoadedModel packed = model::load_model(path_);
  model::Transformer& t = *packed.transformer;
  set_routing(t, GetParam());
  EXPECT_TRUE(same_bits(all_logits(t, prompt_), reference)) << "in place from the store";
  model::GenerationOptions greedy;
  greedy.max_new_tokens = 8;
  EXPECT_EQ(model::generate(t, prompt_, greedy).tokens, model::generate(*folder.transformer, prompt_, greedy).tokens);

  const auto store = dynamic_cast<const offload::StoreWeightSource&>(*packed.source).store();
  EXPECT_EQ(offload::ExpertBacking(t.weights(), store).format(), "bf16");
  for (int devices : {1, 2})
    for (int slots : {1, 3, int(experts)}) {
      offload::OffloadStats stats;
      EXPECT_TRUE(same_bits(offloaded_logits(t, prompt_, slots, devices, "wait", store, &stats), reference))
          << devices << " devices, " << slots << " slots from the store";
      if (slots * devices < int(experts)) {
        EXPECT_GT(stats.nvme_reads, 0u) << devices << " devices, " << slots << " slots";
      }
    }
}

// The store's int8/int4 copies, in place and offloaded from the store, give the bits of the
// same format converted at load from the folder.
TEST_P(PackedFamily, CopiesGiveTheBitsOfTheFormatConvertedAtLoad) {
  offload::PackOptions pack;
  pack.extra_formats = {QuantFormat{DType::kI8, 16}, QuantFormat{DType::kI4, 16}};
  offload::pack_store(dir_, path_, offload::store_layout_for(loading::load_model_config(dir_)), pack);
  for (const char* format : {"int8:16", "int4:16"}) {
    model::LoadOptions options;
    options.weights = model::parse_weight_format(format, "experts");
    model::LoadedModel converted = model::load_model(dir_, options), copies = model::load_model(path_, options);
    set_routing(*converted.transformer, GetParam());
    set_routing(*copies.transformer, GetParam());
    ASSERT_EQ(copies.quantization.parts.size(), 1u);
    EXPECT_EQ(copies.quantization.parts[0].origin, "store copies");
    const std::vector<float> reference = all_logits(*converted.transformer, prompt_);
    EXPECT_TRUE(same_bits(all_logits(*copies.transformer, prompt_), reference)) << format << " in place";
    const auto store = dynamic_cast<const offload::StoreWeightSource&>(*copies.source).store();
    EXPECT_EQ(offload::ExpertBacking(copies.transformer->weights(), store).format(), std::string(format).replace(4, 1, ":g"));
    offload::OffloadStats stats;
    EXPECT_TRUE(same_bits(offloaded_logits(*copies.transformer, prompt_, 2, 1, "wait", store, &stats), reference)) << format << " offloaded";
    EXPECT_GT(stats.nvme_reads, 0u) << format;
  }
}

INSTANTIATE_TEST_SUITE_P(Fused, PackedFamily, ::testing::Values("ds_moe", "moe_plus_plus"), [](const auto& param_info) {
  std::string name = param_info.param;
  for (char& c : name) if (c == '-') c = '_';
  return name;
});

// DS-MoE's store holds each expert's slices (named after the fused tensor they were cut from)
// and not c_fc or c_proj's weight; c_proj's bias, shared by the experts, stays resident. Its
// blobs are the GeLU form (up with an f32 bias, down), which only version 2 readers take.
TEST(PackedDsMoe, BlobsAreTheGeluFormOfVersionTwo) {
  const fs::path dir = kFixtures / "ds_moe";
  const fs::path path = fs::temp_directory_path() / ("moe_packed_ds_moe_blobs_" + std::to_string(::getpid()) + ".moe");
  const loading::ModelConfig config = loading::load_model_config(dir);
  offload::pack_store(dir, path, offload::store_layout_for(config), {});
  {
    const auto store = offload::ExpertStore::open(path);
    EXPECT_EQ(store->manifest().version(), 2u);
    EXPECT_FALSE(store->has_tensor("transformer.h.0.mlp.c_fc.weight"));
    EXPECT_FALSE(store->has_tensor("transformer.h.0.mlp.c_fc.bias"));
    EXPECT_FALSE(store->has_tensor("transformer.h.0.mlp.c_proj.weight"));
    EXPECT_TRUE(store->has_tensor("transformer.h.0.mlp.c_proj.bias"));
    const int64_t I = config.moe_intermediate_size;
    const model::ExpertTensorNames n = model::expert_tensor_names(config, 1, 2);
    EXPECT_EQ(n.up, "transformer.h.1.mlp.c_fc.weight[" + std::to_string(2 * I) + ":" + std::to_string(3 * I) + "]");
    EXPECT_EQ(n.down, "transformer.h.1.mlp.c_proj.weight[:, " + std::to_string(2 * I) + ":" + std::to_string(3 * I) + "]");
    const store::ExpertBlob* blob = store->blob({1, 2}, "bf16");
    ASSERT_NE(blob, nullptr);
    ASSERT_EQ(blob->matrices_size(), 2);
    EXPECT_EQ(blob->matrices(0).bias_name(), n.up_bias);
    // The slices hold the checkpoint's values: c_fc's rows, c_proj's columns, the bias widened to f32.
    const loading::Checkpoint checkpoint = loading::Checkpoint::open(dir);
    const Tensor fc = checkpoint.tensor("transformer.h.1.mlp.c_fc.weight"), proj = checkpoint.tensor("transformer.h.1.mlp.c_proj.weight");
    const Tensor bias = checkpoint.tensor("transformer.h.1.mlp.c_fc.bias").to_f32();
    const Tensor up = store->tensor(n.up), down = store->tensor(n.down), up_bias = store->tensor(n.up_bias);
    EXPECT_EQ(std::memcmp(up.raw(), fc.slice_rows(2 * I, 3 * I).raw(), up.nbytes()), 0);
    ASSERT_EQ(down.shape(), (Shape{config.hidden_size, I}));
    const size_t element = dtype_bytes(proj.dtype(), 1);
    for (int64_t r = 0; r < config.hidden_size; ++r)
      ASSERT_EQ(std::memcmp(down.data<std::byte>() + size_t(r * I) * element,
                            proj.data<std::byte>() + size_t(r * proj.dim(1) + 2 * I) * element, size_t(I) * element), 0) << r;
    ASSERT_EQ(up_bias.dtype(), DType::kF32);
    EXPECT_EQ(std::memcmp(up_bias.raw(), bias.data<float>() + 2 * I, size_t(I) * sizeof(float)), 0);
  }
  // A reader of version 1 only would refuse it by its version; this one refuses a version 3.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    const char three[8] = {3, 0, 0, 0, 0, 0, 0, 0};
    f.write(three, 8);
  }
  try {
    offload::ExpertStore::open(path);
    ADD_FAILURE() << "a version 3 store opened";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has store version 3; this engine reads versions 1 to 2"), std::string::npos) << e.what();
  }
  fs::remove(path);
}

// MoE++'s store holds each expert's gate and up as the halves of its fused up_proj (the
// checkpoint's bytes), not up_proj itself; gated experts, so version 1. The constant experts
// stay resident.
TEST(PackedMoePlusPlus, GateAndUpAreTheHalvesOfTheFusedUpProj) {
  const fs::path dir = kFixtures / "moe_plus_plus";
  const fs::path path = fs::temp_directory_path() / ("moe_packed_moepp_blobs_" + std::to_string(::getpid()) + ".moe");
  const loading::ModelConfig config = loading::load_model_config(dir);
  offload::pack_store(dir, path, offload::store_layout_for(config), {});
  {
    const auto store = offload::ExpertStore::open(path);
    EXPECT_EQ(store->manifest().version(), 1u);
    const std::string q = "model.layers.2.mlp.moe.experts.experts.5.";
    EXPECT_FALSE(store->has_tensor(q + "up_proj.weight"));
    EXPECT_TRUE(store->has_tensor(fmt::format("model.layers.2.mlp.moe.experts.experts.{}.constant", config.num_experts)));
    const int64_t I = config.moe_intermediate_size;
    const model::ExpertTensorNames n = model::expert_tensor_names(config, 2, 5);
    EXPECT_EQ(n.gate, q + "up_proj.weight[0:" + std::to_string(I) + "]");
    EXPECT_EQ(n.up, q + "up_proj.weight[" + std::to_string(I) + ":" + std::to_string(2 * I) + "]");
    EXPECT_EQ(n.down, q + "down_proj.weight");
    const Tensor fused = loading::Checkpoint::open(dir).tensor(q + "up_proj.weight");
    const Tensor gate = store->tensor(n.gate), up = store->tensor(n.up);
    ASSERT_EQ(gate.shape(), (Shape{I, config.hidden_size}));
    EXPECT_EQ(std::memcmp(gate.raw(), fused.slice_rows(0, I).raw(), gate.nbytes()), 0);
    EXPECT_EQ(std::memcmp(up.raw(), fused.slice_rows(I, 2 * I).raw(), up.nbytes()), 0);
  }
  fs::remove(path);
}

// Slice names: rows as views, columns and transposed rows as contiguous copies; malformed ones
// and slices outside their tensor are one clear error naming the slice.
TEST(TensorSlice, NamesRowsAndColumns) {
  EXPECT_TRUE(loading::parse_tensor_slice("a.weight").whole());
  const loading::TensorSlice rows = loading::parse_tensor_slice(loading::row_slice_name("a.weight", 2, 4));
  EXPECT_EQ(rows.tensor, "a.weight");
  EXPECT_EQ(rows.axis, 0);
  EXPECT_EQ(loading::column_slice_name("b", 1, 3), "b[:, 1:3]");
  Tensor t = Tensor::empty(DType::kF32, {3, 4});
  for (int i = 0; i < 12; ++i) t.data<float>()[i] = float(i);
  const Tensor c = loading::cut_slice(t, loading::parse_tensor_slice("t[:, 1:3]"), "t[:, 1:3]");
  ASSERT_EQ(c.shape(), (Shape{3, 2}));
  EXPECT_EQ(std::vector<float>(c.data<float>(), c.data<float>() + 6), (std::vector<float>{1, 2, 5, 6, 9, 10}));
  EXPECT_EQ(loading::cut_slice(t, loading::parse_tensor_slice("t[1:3]"), "t[1:3]").raw(), t.data<float>() + 4);  // a view
  // gpt-oss's bf16 experts: one [1, in, out] slice of an x @ W tensor as [1, out, in].
  EXPECT_EQ(loading::transposed_slice_name("u", 1, 2), "u[1:2].T");
  const Tensor u = t.reshape({3, 2, 2});
  const loading::TensorSlice ut = loading::parse_tensor_slice("u[1:2].T");
  EXPECT_TRUE(ut.transposed);
  EXPECT_EQ(ut.tensor, "u");
  const Tensor x = loading::cut_slice(u, ut, "u[1:2].T");
  ASSERT_EQ(x.shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(std::vector<float>(x.data<float>(), x.data<float>() + 4), (std::vector<float>{4, 6, 5, 7}));
  EXPECT_FALSE(loading::parse_tensor_slice("u[1:2]").transposed);
  try {
    loading::parse_tensor_slice("u[:, 0:1].T");
    ADD_FAILURE() << "transposed columns were taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only row slices are transposed"), std::string::npos) << e.what();
  }
  for (const char* bad : {"t[", "t[1]", "t[3:1]", "t[:, a:2]", "[0:1]", "t[-1:2]", "t[1:2].t", "t[1:2]T"}) {
    try {
      loading::parse_tensor_slice(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("is not a tensor slice"), std::string::npos) << e.what();
    }
  }
  try {
    loading::cut_slice(t, loading::parse_tensor_slice("t[:, 2:9]"), "t[:, 2:9]");
    ADD_FAILURE() << "a slice outside its tensor was cut";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'t[:, 2:9]' lies outside tensor 't' of shape [3, 4]"), std::string::npos) << e.what();
  }
}

// A store of gated experts stays version 1, which older engines read.
TEST(PackedFamilies, GatedStoresStayVersionOne) {
  const fs::path dir = kFixtures / "mixtral";
  const fs::path path = fs::temp_directory_path() / ("moe_packed_mixtral_" + std::to_string(::getpid()) + ".moe");
  offload::pack_store(dir, path, offload::store_layout_for(loading::load_model_config(dir)), {});
  EXPECT_EQ(offload::ExpertStore::open(path)->manifest().version(), 1u);
  fs::remove(path);
}

// Gated experts of GeLU (hidden_act gelu) offload on the CPU devices with the resident bits.
TEST(PackedFamilies, GatedGeluExpertsOffloadWithTheResidentBits) {
  const fs::path dir = kFixtures / "mixtral-gelu";
  model::LoadedModel m = model::load_model(dir);
  ASSERT_NE(m.config.activation, cpu::Activation::kSilu);
  const std::vector<int32_t> prompt = expected_ints(dir, "prompt");
  const std::vector<float> reference = all_logits(*m.transformer, prompt);
  const int experts = m.config.num_experts * m.config.num_sparse_layers();
  for (int slots : {1, 2, experts}) {
    offload::OffloadStats stats;
    EXPECT_TRUE(same_bits(offloaded_logits(*m.transformer, prompt, slots, 1, "wait", nullptr, &stats), reference)) << slots << " slots";
    if (slots < experts) {
      EXPECT_GT(stats.offloaded_uses, 0u);
    }
  }
}

}  // namespace
}  // namespace moe
