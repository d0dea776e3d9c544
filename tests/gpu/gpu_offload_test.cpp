// The offloading executor on CUDA devices: with every expert on the GPU, logits of the
// transformers fixtures (SwiGLU experts), the DS-MoE fixture (GeLU experts with bias) and the
// trained default model agree with the CPU to rounding (1e-5), with the dense products on the
// GPU as well (CudaLinear); and at every budget (down to one slot), host pool, policy and
// predictor the GPU gives the same bits as with every expert on it (the invariant of the CPU
// executor, on the device). A long prompt takes the grouped GEMM (experts and dense products).
// Without room in the arena, dense products and attention fall back to the CPU's bits. Attention
// over the scattered blocks of a shared KV pool (block tables) agrees with the CPU's. An FP8
// checkpoint's experts and dense matrices on the GPU agree with the CPU's FP8 kernels.
// Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/device.h"
#include "offload/executor/offloaded_experts.h"
#include "offload/gpu/cuda_expert_device.h"
#include "runtime/cuda/cuda_attention.h"
#include "runtime/cuda/cuda_linear.h"
#include "runtime/core/error.h"
#include "runtime/cuda/device_arena.h"
#include "runtime/model/kv_block_pool.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model_loader.h"

namespace moe::offload {
namespace {

// The checkout's root: $MOE_SOURCE_DIR when set (a bundle run elsewhere: tools/gpu_bundle.sh),
// else where it was built.
const std::filesystem::path kRoot = std::getenv("MOE_SOURCE_DIR") ? std::getenv("MOE_SOURCE_DIR") : MOE_SOURCE_DIR;

// Prefill of `prompt_length` tokens (all logits), then three greedy decode steps.
std::vector<float> logits(model::Transformer& t, int prompt_length) {
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_length));
  for (int i = 0; i < prompt_length; ++i) prompt[size_t(i)] = int32_t((i * 37 + 11) % t.config().vocab_size);
  model::KvCache cache = t.make_cache(prompt_length + 4);
  std::vector<float> all = t.forward(prompt, cache, model::LogitsWanted::kAll);
  std::vector<float> last(all.end() - t.config().vocab_size, all.end());
  for (int step = 0; step < 3; ++step) {
    const int32_t next = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
    last = t.forward(std::span(&next, 1), cache);
    all.insert(all.end(), last.begin(), last.end());
  }
  return all;
}

std::vector<float> with_runner(model::Transformer& t, model::ExpertRunner* runner, int prompt_length) {
  t.set_expert_runner(runner);
  std::vector<float> got = logits(t, prompt_length);
  t.set_expert_runner(nullptr);
  return got;
}

double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) num += std::pow(got[i] - ref[i], 2), den += std::pow(ref[i], 2);
  return std::sqrt(num / den);
}

// Every expert of the model's, in bytes (a budget that holds them all).
uint64_t all_experts(const model::Transformer& t) {
  return uint64_t(t.config().num_sparse_layers()) * uint64_t(t.config().num_experts) * ExpertBacking(t.weights()).layout().bytes;
}

// Arenas of `device_bytes` on GPUs 0..devices-1 and the options whose devices take their slots
// from them; declared before the runner, so they outlive it.
struct OnGpu {
  explicit OnGpu(uint64_t device_bytes, int devices = 1) {
    std::vector<cuda::DeviceArena*> raw;
    for (int d = 0; d < devices; ++d) {
      arenas.push_back(std::make_unique<cuda::DeviceArena>(d, device_bytes));
      raw.push_back(arenas.back().get());
    }
    options.device_bytes = device_bytes;
    options.devices = devices;
    options.make_device = cuda_expert_devices(std::move(raw));
  }
  std::vector<std::unique_ptr<cuda::DeviceArena>> arenas;
  OffloadOptions options;
};

class GpuOffload : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device is present: GPU tests skipped";
  }
};

TEST_F(GpuOffload, EveryExpertOnTheGpuMatchesTheCpu) {
  for (const auto& dir : {kRoot / "tests" / "fixtures" / "mixtral", kRoot / "tests" / "fixtures" / "qwen2_moe",
                          kRoot / "tests" / "fixtures" / "ds_moe", kRoot / "models" / "ds-moe-tiny"}) {
    for (const int wanted : {9, 100}) {  // 100 tokens: ~33 per expert of the Mixtral fixture, the GEMM path
      model::LoadedModel m = model::load_model(dir);
      // DS-MoE's learned positions end at its context (64): the prompt and three decode steps inside it.
      const int prompt = int(std::min<int64_t>(wanted, m.transformer->max_positions() - 3));
      const std::vector<float> cpu = logits(*m.transformer, prompt);
      const OnGpu arenas(all_experts(*m.transformer));
      OffloadedExperts gpu(*m.transformer, arenas.options);
      const std::vector<float> got = with_runner(*m.transformer, &gpu, prompt);
      ASSERT_EQ(got.size(), cpu.size());
      EXPECT_LT(relative_error(got, cpu), 1e-5) << dir << " prompt " << prompt;
    }
  }
}

// Experts living in int8/int4 (--weights) on the GPU: the slots hold the quantised bytes and
// scales, the kernels agree with the CPU's quantised run to rounding, every budget the same bits.
TEST_F(GpuOffload, QuantisedExpertsMatchTheCpuAndEveryBudget) {
  for (const char* weights : {"int8:16", "int4:32"}) {
    model::LoadOptions options;
    options.weights = model::parse_weight_format(weights);
    model::LoadedModel m = model::load_model(kRoot / "tests" / "fixtures" / "qwen3_moe", options);
    model::Transformer& t = *m.transformer;
    const std::vector<float> cpu = logits(t, 40);
    const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
    const int total = t.config().num_sparse_layers() * t.config().num_experts;
    const OnGpu every(uint64_t(total) * expert);
    OffloadedExperts all(t, every.options);
    const std::vector<float> reference = with_runner(t, &all, 40);
    EXPECT_LT(relative_error(reference, cpu), 1e-5) << weights;
    for (const int slots : {1, 3, total / 2}) {
      const OnGpu some(uint64_t(slots) * expert);
      OffloadedExperts runner(t, some.options);
      const std::vector<float> got = with_runner(t, &runner, 40);
      EXPECT_EQ(std::memcmp(got.data(), reference.data(), got.size() * sizeof(float)), 0) << weights << " " << slots << " slots";
    }
  }
}

TEST_F(GpuOffload, DenseProductsOnTheGpuToo) {
  for (const char* fixture : {"mixtral", "qwen2_moe", "qwen3_moe", "qwen3_moe-yarn", "olmoe", "deepseek", "ds_moe", "ds_moe-att2",
                              "bam-expert-kv", "bam-shared-kv", "moe_plus_plus"}) {
    model::LoadedModel m = model::load_model(kRoot / "tests" / "fixtures" / fixture);
    model::Transformer& t = *m.transformer;
    const std::vector<float> cpu = logits(t, 40);
    cuda::DeviceArena dense(0, uint64_t(1) << 30);
    cuda::CudaLinear linear(dense);
    cuda::CudaAttention attention(dense);
    const OnGpu arenas(all_experts(t));
    OffloadedExperts experts(t, arenas.options);
    t.set_linear_backend(&linear);
    t.set_attention_backend(&attention);
    const std::vector<float> got = with_runner(t, &experts, 40);
    t.set_linear_backend(nullptr);
    t.set_attention_backend(nullptr);
    EXPECT_GT(linear.resident_bytes(), 0u) << fixture;
    EXPECT_LT(relative_error(got, cpu), 1e-5) << fixture;

    // Without room on the device every product falls back to the CPU kernels: the CPU's bits.
    cuda::DeviceArena none(0, 0);
    cuda::CudaLinear no_room(none);
    t.set_linear_backend(&no_room);
    const std::vector<float> fallback = logits(t, 40);
    t.set_linear_backend(nullptr);
    EXPECT_GT(no_room.cpu_fallbacks(), 0) << fixture;
    EXPECT_EQ(std::memcmp(fallback.data(), cpu.data(), cpu.size() * sizeof(float)), 0) << fixture;

    // Nor is there room for a KV mirror: attention on the CPU too, the CPU's bits again.
    cuda::CudaAttention no_mirror(none);
    t.set_attention_backend(&no_mirror);
    const std::vector<float> cpu_attention = logits(t, 40);
    t.set_attention_backend(nullptr);
    EXPECT_GT(no_mirror.cpu_fallbacks(), 0) << fixture;
    EXPECT_EQ(std::memcmp(cpu_attention.data(), cpu.data(), cpu.size() * sizeof(float)), 0) << fixture;
  }
}

// The FP8 checkpoint of DeepSeek-V3's layout (128 x 128 blocks over shapes that leave partial
// edge blocks): its experts in GPU slots and its dense FP8 matrices resident (CudaLinear; those
// whose rows are not whole 16-byte loads stay on the CPU), against the CPU's FP8 kernels on the same
// bytes to 1e-5 (the same dequantised values, summed in another order); 100 tokens take the
// grouped GEMM, experts and dense matrices alike. Fewer slots give the same bits. The 16 x 32
// block fixture, whose widths are not whole 16-byte loads of FP8, is refused in one sentence.
TEST_F(GpuOffload, Fp8CheckpointMatchesTheCpu) {
  model::LoadedModel m = model::load_model(kRoot / "tests" / "fixtures" / "deepseek_v3-fp8");
  model::Transformer& t = *m.transformer;
  ASSERT_TRUE(m.config.fp8.enabled());
  for (const int prompt : {9, 100}) {
    const std::vector<float> cpu = logits(t, prompt);
    cuda::DeviceArena dense(0, uint64_t(1) << 30);
    cuda::CudaLinear linear(dense);
    cuda::CudaAttention attention(dense);
    const OnGpu arenas(all_experts(t));
    OffloadedExperts experts(t, arenas.options);
    t.set_linear_backend(&linear);
    t.set_attention_backend(&attention);
    const std::vector<float> got = with_runner(t, &experts, prompt);
    t.set_linear_backend(nullptr);
    t.set_attention_backend(nullptr);
    EXPECT_GT(linear.resident_bytes(), 0u);
    ASSERT_EQ(got.size(), cpu.size());
    EXPECT_LT(relative_error(got, cpu), 1e-5) << "prompt " << prompt;

    const std::vector<float> reference = with_runner(t, &experts, prompt);  // experts alone on the GPU
    EXPECT_LT(relative_error(reference, cpu), 1e-5) << "prompt " << prompt;
    const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
    for (const int slots : {1, 3}) {
      const OnGpu some(uint64_t(slots) * expert);
      OffloadedExperts runner(t, some.options);
      const std::vector<float> few = with_runner(t, &runner, prompt);
      EXPECT_EQ(std::memcmp(few.data(), reference.data(), few.size() * sizeof(float)), 0) << slots << " slots, prompt " << prompt;
    }
  }

  model::LoadedModel narrow = model::load_model(kRoot / "tests" / "fixtures" / "deepseek_v3-fp8-blocks");
  const OnGpu arenas(all_experts(*narrow.transformer));
  try {
    OffloadedExperts experts(*narrow.transformer, arenas.options);
    ADD_FAILURE() << "FP8 experts 72 wide were taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("multiples of 16"), std::string::npos) << e.what();
  }
}

// CudaLinear keeps FP8 slices of a bigger matrix resident with the grid rows under them (a fused
// tensor's rows: a row offset inside a block; a transposed head's columns: a column offset on a
// 16-column step), GEMV and grouped GEMM alike, against the CPU on the same views; a column offset that
// splits a 16-byte load stays on the CPU and gives the CPU's bits.
TEST_F(GpuOffload, CudaLinearTakesFp8SlicesAtBlockOffsets) {
  const int64_t rows = 300, cols = 448;
  const int block = 128;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> values(size_t(rows * cols));
  for (float& v : values) v = d(rng);
  std::vector<uint8_t> data(values.size());
  const int64_t grid_cols = cpu::fp8_blocks(cols, block);
  std::vector<float> grid(size_t(cpu::fp8_blocks(rows, block) * grid_cols));
  cpu::fp8_quantize_blocks(values.data(), rows, cols, block, block, data.data(), grid.data());
  struct Slice {
    int64_t row0, rows, col0, cols;
    bool on_gpu;
  };
  cuda::DeviceArena arena(0, uint64_t(64) << 20);
  cuda::CudaLinear linear(arena);
  std::vector<std::vector<uint8_t>> held;  // the slices' bytes live as long as the linear's keys
  int64_t fallbacks = 0;
  for (const Slice sl : {Slice{130, 150, 0, 448, true}, Slice{13, 40, 144, 160, true}, Slice{0, 64, 8, 96, false}}) {
    held.emplace_back(size_t(sl.rows * sl.cols));
    for (int64_t r = 0; r < sl.rows; ++r)
      std::memcpy(held.back().data() + r * sl.cols, data.data() + (sl.row0 + r) * cols + sl.col0, size_t(sl.cols));
    cpu::WeightMatrix w{held.back().data(), DType::kF8E4M3, sl.rows, sl.cols};
    w.block_scales = grid.data();
    w.block_rows = w.block_cols = block;
    w.block_stride = grid_cols;
    w.block_row0 = sl.row0;
    w.block_col0 = sl.col0;
    for (const int64_t m : {int64_t{1}, int64_t{40}}) {  // the GEMV, then the grouped GEMM on the slice
      std::vector<float> x(size_t(m * sl.cols));
      for (float& v : x) v = d(rng);
      std::vector<float> want(size_t(m * sl.rows)), got(want.size(), NAN);
      cpu::matmul(x.data(), m, w, want.data());
      linear.matmul(x.data(), m, w, got.data(), nullptr);
      if (sl.on_gpu) {
        EXPECT_LT(relative_error(got, want), 1e-5) << "slice at " << sl.row0 << ", " << sl.col0 << " m " << m;
      } else {
        ++fallbacks;
        EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0) << "m " << m;
      }
    }
  }
  EXPECT_GT(linear.resident_bytes(), 0u);
  EXPECT_EQ(linear.cpu_fallbacks(), fallbacks);
}

// The device KV cache follows the host one: set mid-sequence, switched between caches, reused
// for a new sequence, it fills what it lacks from the host cache and agrees with the CPU.
TEST_F(GpuOffload, AttentionMirrorsWhicheverCacheItIsGiven) {
  model::LoadedModel m = model::load_model(kRoot / "tests" / "fixtures" / "mixtral");
  model::Transformer& t = *m.transformer;
  const std::vector<int32_t> a = {1, 17, 42, 7, 99, 3, 250, 11}, b = {5, 6, 7, 8, 9};
  const auto run = [&](model::KvCache& cache, const std::vector<int32_t>& tokens) {
    return t.forward(tokens, cache, model::LogitsWanted::kAll);
  };
  model::KvCache c1 = t.make_cache(32), c2 = t.make_cache(32);
  const std::vector<float> cpu_a = run(c1, a), cpu_b = run(c2, b), cpu_a2 = run(c1, b);  // c1 continues
  c1.clear();
  c2.clear();
  cuda::DeviceArena arena(0, 16 << 20);
  cuda::CudaAttention attention(arena);
  run(c1, a);                          // prefill on the CPU
  t.set_attention_backend(&attention);  // then the GPU, mid-sequence
  const std::vector<float> gpu_b = run(c2, b), gpu_a2 = run(c1, b);
  t.set_attention_backend(nullptr);
  EXPECT_LT(relative_error(gpu_b, cpu_b), 1e-5);
  EXPECT_LT(relative_error(gpu_a2, cpu_a2), 1e-5);
  c1.clear();  // a new sequence in a mirrored cache
  t.set_attention_backend(&attention);
  const std::vector<float> gpu_a = run(c1, a);
  t.set_attention_backend(nullptr);
  EXPECT_LT(relative_error(gpu_a, cpu_a), 1e-5);
}

// A long prompt chunk whose keys' scores would not fit a block's shared memory (70000 keys:
// 280 KB) goes through the split kernel, 64 queries at a time, and agrees with the CPU.
TEST_F(GpuOffload, AttentionOverALongChunkBeyondSharedMemory) {
  const int64_t capacity = 70000, n = 100, start = capacity - n, heads = 4, kv_heads = 2, head_dim = 64;
  model::KvCache cache(1, int(kv_heads), int(head_dim), capacity);
  cache.advance(capacity);  // its one block, rows 0..capacity - 1
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> d(-1, 1);
  for (int64_t i = 0; i < capacity * kv_heads * head_dim; ++i) cache.keys(0)[i] = d(rng), cache.values(0)[i] = d(rng);
  std::vector<float> q(size_t(n * heads * head_dim)), want(q.size()), got(q.size(), NAN);
  for (float& x : q) x = d(rng);
  const float scale = 0.125f;
  cpu::attention(q.data(), cache.keys(0), cache.values(0), n, start, heads, kv_heads, head_dim, scale, want.data());
  cuda::DeviceArena arena(0, cache.nbytes());
  cuda::CudaAttention attention(arena);
  model::AttentionStep step;
  step.q = q.data();
  step.n = n;
  step.start = start;
  step.n_heads = heads;
  step.n_kv_heads = kv_heads;
  step.head_dim = head_dim;
  step.scale = scale;
  attention.attend(cache, step, got.data());
  EXPECT_EQ(attention.cpu_fallbacks(), 0);
  EXPECT_LT(relative_error(got, want), 1e-5);
}

// Sequences in one shared pool, their blocks scattered (every block taken, a shuffled two thirds
// given back, the caches growing in turns): the mirror holds the pool and the kernels read each
// cache's block table, agreeing with the CPU kernel over the same blocks for decode and chunks,
// with and without a sliding window, on the one-block kernel and past kSplitFrom keys on the
// split one. A new cache in blocks another held, and a cache whose counts were swept while it sat
// idle, upload their own rows again. Nothing falls back to the CPU.
TEST_F(GpuOffload, AttentionOverScatteredBlocksOfASharedPool) {
  const int layers = 2;
  const int64_t heads = 4, kv_heads = 2, head_dim = 64, row = kv_heads * head_dim, window = 37;
  const float scale = 0.125f;
  // Tokens per round for three caches: prefill chunks (4100 keys for the third: the one-block
  // kernel past kSplitFrom), decode steps and short chunks (the split kernel for the third), a
  // longer chunk (the one-block kernel again).
  const std::vector<std::array<int64_t, 3>> rounds = {{9, 33, 4100}, {1, 1, 1},   {5, 20, 1}, {1, 1, 20},
                                                      {1, 5, 5},     {70, 1, 100}, {1, 1, 1}};
  int64_t total = 0;
  for (const auto& r : rounds) total += r[0] + r[1] + r[2];
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> d(-1, 1);
  for (const int64_t block_tokens : {3, 16}) {
    SCOPED_TRACE(fmt::format("blocks of {} tokens", block_tokens));
    const int64_t blocks = 3 * (total / block_tokens + 8);
    auto pool = std::make_shared<model::KvBlockPool>(layers, row, block_tokens, blocks);
    std::vector<int32_t> all;
    for (int64_t b = 0; b < blocks; ++b) all.push_back(*pool->allocate());
    std::shuffle(all.begin(), all.end(), rng);
    for (size_t i = 0; i < all.size(); ++i)
      if (i % 3 != 0) pool->release(all[i]);
    cuda::DeviceArena arena(0, pool->nbytes());
    cuda::CudaAttention attention(arena);
    // n new random rows in every layer of `cache`; then, when `check`, each layer's step over them
    // on the GPU against the CPU kernel over the cache's blocks.
    const auto step = [&](model::KvCache& cache, int64_t n, bool check = true) {
      const int64_t start = cache.length();
      cache.advance(n);
      for (int l = 0; l < layers; ++l)
        for (int64_t p = start; p < start + n; ++p)
          for (int64_t i = 0; i < row; ++i) cache.key_row(l, p)[i] = d(rng), cache.value_row(l, p)[i] = d(rng);
      if (!check) return;
      for (int l = 0; l < layers; ++l)
        for (const int64_t w : {int64_t{0}, window}) {
          std::vector<float> q(size_t(n * heads * head_dim)), want(q.size()), got(q.size(), NAN);
          for (float& x : q) x = d(rng);
          cpu::attention(q.data(), cache.blocks(l), n, start, heads, kv_heads, head_dim, scale, want.data(), w);
          model::AttentionStep s;
          s.layer = l;
          s.q = q.data();
          s.n = n;
          s.start = start;
          s.n_heads = heads;
          s.n_kv_heads = kv_heads;
          s.head_dim = head_dim;
          s.scale = scale;
          s.sliding_window = w;
          attention.attend(cache, s, got.data());
          EXPECT_LT(relative_error(got, want), 1e-5) << "layer " << l << ", tokens " << start << ".." << start + n - 1
                                                     << ", window " << w;
        }
    };
    std::vector<model::KvCache> caches;
    for (int i = 0; i < 3; ++i) caches.emplace_back(pool, total);
    for (const auto& r : rounds)
      for (size_t i = 0; i < caches.size(); ++i) step(caches[i], r[i]);
    for (const model::KvCache& cache : caches) EXPECT_FALSE(cache.contiguous());
    // The first cache's blocks (the lowest free ones now) go to a new cache, first attended
    // mid-sequence: the device's rows there are the old cache's until it uploads its own.
    caches[0].clear();
    model::KvCache reused(pool, total);
    step(reused, 40, false);
    step(reused, 1);
    // Caches that come and go in the blocks freed, until the idle second cache's counts are
    // swept: it uploads its rows again.
    for (int i = 0; i < 150; ++i) {
      model::KvCache brief(pool, total);
      step(brief, 2, false);
      step(brief, 1);
    }
    step(caches[1], 1);
    step(caches[2], 1);
    EXPECT_EQ(attention.cpu_fallbacks(), 0);
    EXPECT_EQ(attention.device_bytes(), pool->nbytes());
  }
}

TEST_F(GpuOffload, SameBitsAtEveryBudgetPolicyAndPredictor) {
  for (const char* fixture : {"mixtral", "ds_moe"}) {
    model::LoadedModel m = model::load_model(kRoot / "tests" / "fixtures" / fixture);
    model::Transformer& t = *m.transformer;
    if (std::string(fixture) == "ds_moe") t.set_routing_mode(model::parse_routing_mode("threshold:1"));
    const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
    const int total = t.config().num_sparse_layers() * t.config().num_experts;
    cuda::DeviceArena dense(0, uint64_t(1) << 30);
    cuda::CudaLinear linear(dense);  // the whole GPU path: dense products and attention too
    cuda::CudaAttention attention(dense);
    t.set_linear_backend(&linear);
    t.set_attention_backend(&attention);
    const OnGpu every(uint64_t(total) * expert);
    OffloadedExperts all(t, every.options);
    const std::vector<float> reference = with_runner(t, &all, 40);
    std::mt19937 rng(7);
    for (int trial = 0; trial < 8; ++trial) {
      const int slots = trial == 0 ? 1 : 1 + int(rng() % unsigned(total));
      const int devices = 1 + int(rng() % unsigned(std::min(cuda::device_count(), 2)));
      OnGpu gpus(uint64_t(slots) * expert, devices);
      OffloadOptions& o = gpus.options;
      o.host_bytes = uint64_t(rng() % unsigned(total + 1)) * expert;
      o.policy = std::vector<std::string>{"lru", "lfu", "multi"}[rng() % 3];
      const std::string predictor = std::vector<std::string>{"none", "next-layer", "stacked:2"}[rng() % 3];
      SCOPED_TRACE(fmt::format("{} trial {}: {} GPUs, {} slots, host {} experts, {}, predictor {}", fixture, trial, o.devices,
                               slots, o.host_bytes / expert, o.policy, predictor));
      OffloadedExperts runner(t, o, make_predictor(predictor, t, nullptr));
      const std::vector<float> got = with_runner(t, &runner, 40);
      ASSERT_EQ(got.size(), reference.size());
      EXPECT_EQ(std::memcmp(got.data(), reference.data(), got.size() * sizeof(float)), 0);
      EXPECT_GT(runner.stats().bytes_host_to_device, 0u);
    }
    t.set_linear_backend(nullptr);
    t.set_attention_backend(nullptr);
  }
}

}  // namespace
}  // namespace moe::offload
