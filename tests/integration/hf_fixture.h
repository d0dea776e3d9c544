#pragma once
// What the transformers-fixture tests share: a fixture folder's expected.json and logits
// (tests/reference/make_hf_fixtures.py writes them), the engine's logits of a whole prompt, their
// relative error, and the check that batched decode gives every sequence its tokens alone.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "runtime/core/read_file.h"
#include "runtime/engine/scheduler.h"
#include "runtime/loading/safetensors.h"
#include "runtime/model/generator.h"

namespace moe::testing {

inline const std::filesystem::path kFixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";

inline nlohmann::json expected_json(const std::filesystem::path& dir) {
  return nlohmann::json::parse(read_file(dir / "expected.json"));
}

// "prompt" or "generated" of expected.json.
inline std::vector<int32_t> expected_ints(const std::filesystem::path& dir, const char* key) {
  return expected_json(dir).at(key).get<std::vector<int32_t>>();
}

inline Tensor expected_logits(const std::filesystem::path& dir, const std::string& name = "logits") {
  return loading::SafetensorsFile::open(dir / "expected.safetensors").tensor(name).to_f32();
}

inline std::vector<float> all_logits(model::Transformer& t, const std::vector<int32_t>& prompt) {
  model::KvCache cache = t.make_cache(int64_t(prompt.size()));
  return t.forward(prompt, cache, model::LogitsWanted::kAll);
}

// max |got - reference| / max |reference|
inline double relative_error(const std::vector<float>& got, const Tensor& reference) {
  EXPECT_EQ(int64_t(got.size()), reference.numel());
  const float* ref = reference.data<float>();
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < got.size() && int64_t(i) < reference.numel(); ++i) {
    max_ref = std::max(max_ref, double(std::fabs(ref[i])));
    max_err = std::max(max_err, double(std::fabs(got[i] - ref[i])));
  }
  return max_err / max_ref;
}

// The prompts stepped together by the scheduler over a pool of `blocks` blocks of `block_tokens`
// (small enough that sequences share it and the youngest are preempted) produce the tokens each
// gets alone; returns those tokens, alone.
inline std::vector<std::vector<int32_t>> expect_batched_decode_matches_alone(model::Transformer& t,
                                                                             const std::vector<std::vector<int32_t>>& prompts,
                                                                             const model::GenerationOptions& options,
                                                                             int64_t block_tokens, int64_t blocks) {
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) alone.push_back(model::generate(t, p, options).tokens);
  engine::SchedulerOptions so;
  so.max_batch = 3;
  so.max_step_tokens = 9;
  engine::Scheduler scheduler(t, t.make_kv_pool(block_tokens, blocks), so);
  std::map<engine::SequenceId, size_t> index;
  for (size_t i = 0; i < prompts.size(); ++i) index[scheduler.submit(prompts[i], options)] = i;
  for (int steps = 0; !scheduler.idle() && steps < 1000; ++steps) scheduler.step();
  EXPECT_TRUE(scheduler.idle());
  for (const auto& [id, i] : index) {
    const std::vector<int32_t>& all = scheduler.tokens(id);
    EXPECT_EQ(std::vector<int32_t>(all.begin() + int64_t(prompts[i].size()), all.end()), alone[i]) << "sequence " << i;
  }
  EXPECT_GT(scheduler.stats().max_running, 1);
  return alone;
}

}  // namespace moe::testing
