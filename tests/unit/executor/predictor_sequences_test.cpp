// The learnt predictors keep each sequence's own history: what they guess for a sequence does not
// depend on the sequences that ran before it (in another cache, or earlier in the same cache) or
// beside it in a batched step.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "offload/executor/predictor.h"
#include "offload/executor/routing_trace.h"
#include "placement/trace/trace_io.h"
#include "runtime/model/model_loader.h"
#include "tests/unit/model/greedy_logits.h"

namespace moe::offload {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";
using Guesses = std::vector<std::vector<ExpertKey>>;

// One decode-style run: each step feeds every listed sequence its next token (all in one
// batched step); returns the predictor's guesses at every MoE layer of every step.
Guesses run_steps(model::Transformer& t, Predictor& p, std::vector<model::KvCache*> caches,
                  const std::vector<std::vector<int32_t>>& tokens) {
  Guesses out;
  t.set_expert_input_hook([&](int layer, const float* x, int64_t n, const model::RoutingDecision& d) {
    out.push_back(p.predict(layer, x, n, d));
  });
  for (size_t step = 0; step < tokens.front().size(); ++step) {
    std::vector<model::SequenceStep> batch;
    for (size_t s = 0; s < caches.size(); ++s) batch.push_back({std::span(&tokens[s][step], 1), caches[s]});
    t.forward(batch);
  }
  t.set_expert_input_hook({});
  return out;
}

TEST(LearntPredictor, KeepsEachSequencesOwnHistory) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  model::Transformer& t = *m.transformer;
  const auto trace_path = std::filesystem::temp_directory_path() / "moe_predictor_sequences.trace";
  {
    TraceRecorder recorder(trace_path, t.config(), "mixtral", "test");
    t.set_routing_hook(recorder.hook());
    const std::vector<int32_t> prompt = {1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3};
    moe::testing::prefill_and_greedy_logits(t, prompt, 12);
    recorder.finish();
    t.set_routing_hook({});
  }
  const placement::Trace profile = placement::read_trace(trace_path);
  const std::vector<int32_t> a = {9, 81, 140, 2, 77, 190, 31, 5, 66, 12, 240, 18};
  const std::vector<int32_t> c = {44, 3, 201, 150, 8, 97, 23, 180, 61, 11, 130, 7};
  const std::vector<int32_t> d = {100, 55, 6, 222, 39, 14, 170, 88, 4, 250, 29, 120};
  for (const char* spec : {"history", "history:2"}) {
    SCOPED_TRACE(spec);
    auto fresh = [&] { return make_predictor(spec, t, &profile); };
    // C alone, from an empty cache.
    model::KvCache alone = t.make_cache(64);
    const Guesses reference = run_steps(t, *fresh(), {&alone}, {c});

    // The history matters: C continuing A in one sequence is guessed otherwise.
    {
      auto p = fresh();
      model::KvCache cache = t.make_cache(64);
      run_steps(t, *p, {&cache}, {a});
      ASSERT_NE(run_steps(t, *p, {&cache}, {c}), reference) << "the fixture's history predictor ignores history";
    }
    // A in another cache first, then C: A is another sequence.
    {
      auto p = fresh();
      model::KvCache first = t.make_cache(64), second = t.make_cache(64);
      run_steps(t, *p, {&first}, {a});
      EXPECT_EQ(run_steps(t, *p, {&second}, {c}), reference);
    }
    // A, then the same cache cleared for a new request C: position 0 starts a new sequence.
    {
      auto p = fresh();
      model::KvCache cache = t.make_cache(64);
      run_steps(t, *p, {&cache}, {a});
      cache.clear();
      EXPECT_EQ(run_steps(t, *p, {&cache}, {c}), reference);
    }
    // Batched: C beside D guesses the same after A ran as without it.
    {
      model::KvCache c1 = t.make_cache(64), d1 = t.make_cache(64);
      const Guesses batched = run_steps(t, *fresh(), {&c1, &d1}, {c, d});
      auto p = fresh();
      model::KvCache first = t.make_cache(64), c2 = t.make_cache(64), d2 = t.make_cache(64);
      run_steps(t, *p, {&first}, {a});
      EXPECT_EQ(run_steps(t, *p, {&c2, &d2}, {c, d}), batched);
    }
  }
}

}  // namespace
}  // namespace moe::offload
