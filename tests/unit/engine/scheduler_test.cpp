// Continuous batching keeps every sequence's tokens exactly those it gets alone: over every
// family, randomized arrivals, prompt lengths, sampling options, batch and step limits, KV
// budgets small enough to preempt, and cancellations.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>

#include "offload/executor/expert_backing.h"
#include "offload/executor/offloaded_experts.h"
#include "offload/executor/predictor.h"
#include "runtime/core/error.h"
#include "runtime/engine/scheduler.h"
#include "runtime/model/generator.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/synthetic_weights.h"
#include "tests/unit/model/tiny_configs.h"

namespace moe::engine {
namespace {

using model::GenerationOptions;
using model::LoadedModel;

LoadedModel family_model(const std::string& name) {
  const std::filesystem::path fixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";
  if (std::filesystem::exists(fixtures / name / "config.json") && moe::testing::tiny_config(name) == "{}")
    return model::load_model(fixtures / name);
  const auto config = loading::parse_model_config(moe::testing::tiny_config(name), name);
  return model::load_model(config, std::make_shared<model::SyntheticWeights>(config, 7));
}

struct Job {
  std::vector<int32_t> prompt;
  GenerationOptions options;
  int arrival_step = 0;
  int cancel_after = -1;  // steps after arrival; -1: never
};

std::vector<Job> random_jobs(std::mt19937& rng, int count, int32_t vocab) {
  std::vector<Job> jobs;
  for (int i = 0; i < count; ++i) {
    Job j;
    j.prompt.resize(1 + rng() % 23);
    for (int32_t& t : j.prompt) t = int32_t(rng() % uint32_t(vocab));
    j.options.max_new_tokens = int(rng() % 12);
    if (rng() % 3) j.options.sampling = {0.8, 0.9, uint64_t(rng())};
    if (rng() % 3 == 0) j.options.stop_tokens = {int32_t(rng() % uint32_t(vocab)), int32_t(rng() % uint32_t(vocab))};
    j.arrival_step = int(rng() % 4);
    if (rng() % 5 == 0) j.cancel_after = int(rng() % 6);
    jobs.push_back(std::move(j));
  }
  return jobs;
}

// Each job's prompt and generated tokens when it runs alone (the single-sequence path).
std::vector<std::vector<int32_t>> tokens_alone(model::Transformer& t, const std::vector<Job>& jobs) {
  std::vector<std::vector<int32_t>> alone;
  for (const Job& j : jobs) {
    std::vector<int32_t> tokens = j.prompt;
    const model::Generation g = model::generate(t, j.prompt, j.options);
    tokens.insert(tokens.end(), g.tokens.begin(), g.tokens.end());
    alone.push_back(tokens);
  }
  return alone;
}

class EveryFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFamily, BatchedTokensAreTheTokensAlone) {
  LoadedModel m = family_model(GetParam());
  model::Transformer& t = *m.transformer;
  std::mt19937 rng(uint32_t(std::hash<std::string>{}(GetParam())));
  int64_t preemptions = 0;
  for (int round = 0; round < 6; ++round) {
    const std::vector<Job> jobs = random_jobs(rng, 10, m.config.vocab_size);
    const std::vector<std::vector<int32_t>> alone = tokens_alone(t, jobs);
    SchedulerOptions options;
    options.max_batch = (round % 2 ? 2 : 1) + int(rng() % 6);
    options.max_step_tokens = 1 + int64_t(rng() % 40);
    const int64_t block_tokens = 1 + int64_t(rng() % 8);
    // Every other round barely one sequence's worth (preemption), else up to room for all.
    const int64_t blocks = (34 + block_tokens - 1) / block_tokens + int64_t(rng() % (round % 2 ? 2 : 40));
    Scheduler scheduler(t, t.make_kv_pool(block_tokens, blocks), options);
    std::map<SequenceId, size_t> job_of;
    std::map<SequenceId, int> age;
    std::map<SequenceId, std::string> reason;
    for (int step = 0; step < 2000 && (step < 8 || !scheduler.idle()); ++step) {
      for (size_t i = 0; i < jobs.size(); ++i)
        if (jobs[i].arrival_step == step) job_of[scheduler.submit(jobs[i].prompt, jobs[i].options)] = i;
      for (auto& [id, a] : age)
        if (jobs[job_of[id]].cancel_after == a++ && !reason.count(id)) scheduler.cancel(id);
      for (const auto& [id, _] : job_of) age.try_emplace(id, 0);
      for (const SequenceEvent& e : scheduler.step())
        if (e.finished) reason[e.id] = e.finish_reason;
    }
    ASSERT_TRUE(scheduler.idle()) << "round " << round;
    preemptions += scheduler.stats().preemptions;
    for (const auto& [id, i] : job_of) {
      const std::vector<int32_t>& got = scheduler.tokens(id);
      ASSERT_TRUE(reason.count(id)) << "sequence " << id << " never finished";
      if (reason[id] == "cancelled") {  // a prefix of what it produces alone
        ASSERT_LE(got.size(), alone[i].size());
        EXPECT_TRUE(std::equal(got.begin(), got.end(), alone[i].begin())) << "round " << round << " job " << i;
      } else {
        EXPECT_EQ(got, alone[i]) << "round " << round << " job " << i << " batch " << options.max_batch << " step tokens "
                                 << options.max_step_tokens << " blocks " << blocks << "x" << block_tokens;
      }
    }
    EXPECT_EQ(scheduler.pool().free_blocks(), blocks);  // every block back
  }
  EXPECT_GT(preemptions, 0);  // the tight rounds did preempt
}

INSTANTIATE_TEST_SUITE_P(Families, EveryFamily,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek", "deepseek_v2", "deepseek_v3",
                                           "glm4_moe", "ds_moe", "ds_moe-att2",
                                           "bam-expert-kv", "bam-shared-kv", "moe_plus_plus"));

// The offloading executor under a batched step: every expert fetched once for the step's tokens,
// at any budget, device count, policy and predictor, and the tokens still those of the resident
// model alone.
TEST(Scheduler, OffloadedBatchesGiveTheResidentTokensAlone) {
  std::mt19937 rng(5);
  for (const char* name : {"mixtral", "qwen2_moe", "ds_moe", "bam-shared-kv", "moe_plus_plus"}) {
    LoadedModel m = family_model(name);
    model::Transformer& t = *m.transformer;
    const std::vector<Job> jobs = random_jobs(rng, 6, m.config.vocab_size);
    const std::vector<std::vector<int32_t>> alone = tokens_alone(t, jobs);
    const uint64_t expert = offload::ExpertBacking(t.weights()).layout().bytes;
    const int total = m.config.num_sparse_layers() * m.config.num_experts;
    for (int trial = 0; trial < 3; ++trial) {
      offload::OffloadOptions o;
      o.devices = 1 + int(rng() % 3);
      o.device_bytes = uint64_t(1 + rng() % unsigned(total)) * expert;
      o.host_bytes = uint64_t(rng() % unsigned(total + 1)) * expert;
      o.policy = std::vector<std::string>{"lru", "lfu", "multi"}[rng() % 3];
      o.miss = rng() % 3 == 0 ? "cpu" : "wait";
      const std::string predictor = std::vector<std::string>{"none", "next-layer", "stacked:2"}[rng() % 3];
      SCOPED_TRACE(fmt::format("{} trial {}: {} devices, {} policy, miss {}, predictor {}", name, trial, o.devices, o.policy,
                               o.miss, predictor));
      offload::OffloadedExperts runner(t, o, offload::make_predictor(predictor, t, nullptr));
      t.set_expert_runner(&runner);
      SchedulerOptions options;
      options.max_batch = 2 + int(rng() % 5);
      options.max_step_tokens = 4 + int64_t(rng() % 30);
      Scheduler scheduler(t, t.make_kv_pool(4, 64), options);
      std::vector<SequenceId> ids;
      for (const Job& j : jobs) ids.push_back(scheduler.submit(j.prompt, j.options));
      while (!scheduler.idle()) scheduler.step();
      t.set_expert_runner(nullptr);
      for (size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(scheduler.tokens(ids[i]), alone[i]) << "job " << i;
      const offload::OffloadStats s = runner.stats();
      EXPECT_EQ(s.uses, s.pinned_hits + s.offloaded_uses);
    }
  }
}

LoadedModel mixtral() { return family_model("mixtral"); }

TEST(Scheduler, RefusesWhatCanNeverRun) {
  LoadedModel m = mixtral();
  Scheduler s(*m.transformer, m.transformer->make_kv_pool(4, 5));  // 20 tokens of KV
  GenerationOptions o;
  o.max_new_tokens = 4;
  EXPECT_THROW(s.submit({}, o), Error);
  EXPECT_THROW(s.submit({1, 97}, o), Error);  // outside the vocabulary of 97
  try {
    s.submit(std::vector<int32_t>(17, 1), o);  // 17 + 4 > 20
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("KV budget"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(s.idle());
  s.submit(std::vector<int32_t>(16, 1), o);  // exactly fits
  while (!s.idle()) s.step();
}

TEST(Scheduler, RespectsTheBatchAndStepLimits) {
  LoadedModel m = mixtral();
  SchedulerOptions options;
  options.max_batch = 3;
  options.max_step_tokens = 10;
  Scheduler s(*m.transformer, m.transformer->make_kv_pool(16, 64), options);
  GenerationOptions o;
  o.max_new_tokens = 5;
  for (int i = 0; i < 7; ++i) s.submit(std::vector<int32_t>(size_t(4 + i), 2), o);
  while (!s.idle()) {
    s.step();
    EXPECT_LE(s.running(), 3);
  }
  EXPECT_EQ(s.stats().max_running, 3);
  EXPECT_LE(s.stats().step_tokens, s.stats().steps * 10);
  EXPECT_EQ(s.stats().generated_tokens, 35);
}

TEST(Scheduler, ATightBudgetPreemptsAndRecomputes) {
  LoadedModel m = mixtral();
  // 6 blocks of 4 tokens: two sequences of 8 prompt + 8 new tokens cannot both hold 16 tokens.
  Scheduler s(*m.transformer, m.transformer->make_kv_pool(4, 6));
  GenerationOptions o;
  o.max_new_tokens = 8;
  const SequenceId a = s.submit({1, 2, 3, 4, 5, 6, 7, 8}, o), b = s.submit({8, 7, 6, 5, 4, 3, 2, 1}, o);
  while (!s.idle()) s.step();
  EXPECT_GT(s.stats().preemptions, 0);
  EXPECT_GT(s.sequence_stats(b).recomputed_tokens, 0);
  EXPECT_EQ(s.sequence_stats(a).preemptions, 0);  // the oldest runs through
  for (const SequenceId id : {a, b}) {
    const std::vector<int32_t>& tokens = s.tokens(id);
    const model::Generation g = model::generate(*m.transformer, std::span(tokens).first(8), o);
    EXPECT_EQ(std::vector<int32_t>(tokens.begin() + 8, tokens.end()), g.tokens);
  }
}

TEST(Scheduler, CancelsOneWithoutDisturbingTheOthers) {
  LoadedModel m = mixtral();
  Scheduler s(*m.transformer, m.transformer->make_kv_pool(8, 32));
  GenerationOptions o;
  o.max_new_tokens = 10;
  const SequenceId a = s.submit({5, 6, 7}, o), b = s.submit({9, 10}, o);
  s.step();
  s.step();
  EXPECT_TRUE(s.cancel(b));
  EXPECT_FALSE(s.cancel(b));
  bool cancelled = false;
  while (!s.idle())
    for (const SequenceEvent& e : s.step()) cancelled |= e.id == b && e.finished && e.finish_reason == "cancelled";
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(s.cancel(a));  // finished
  const model::Generation g = model::generate(*m.transformer, std::vector<int32_t>{5, 6, 7}, o);
  EXPECT_EQ(std::vector<int32_t>(s.tokens(a).begin() + 3, s.tokens(a).end()), g.tokens);
  s.forget(a);
  EXPECT_THROW(s.tokens(a), Error);
}

}  // namespace
}  // namespace moe::engine
