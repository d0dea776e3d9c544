// The server's pieces without sockets: request validation as OpenAI's API answers it, stop
// strings over streamed text, the serving engine's submissions, cancellations and overload, and
// the metrics' exposition format.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "runtime/core/error.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/synthetic_weights.h"
#include "runtime/serve/api_error.h"
#include "runtime/serve/metrics.h"
#include "runtime/serve/openai_request.h"
#include "runtime/serve/serving_engine.h"
#include "runtime/serve/stop_matcher.h"
#include "tests/unit/model/tiny_configs.h"

namespace moe::serve {
namespace {

int status_of(Endpoint e, const std::string& body) {
  try {
    parse_openai_request(e, body);
    return 200;
  } catch (const ApiError& error) {
    return error.status();
  }
}

TEST(OpenAiRequest, ParsesCompletionsAndChat) {
  const OpenAiRequest c = parse_openai_request(
      Endpoint::kCompletions,
      R"({"model": "m", "prompt": "hi", "max_tokens": 5, "temperature": 0, "top_p": 0.5, "seed": 3, "stop": ["a", "b"],
          "stream": true, "stream_options": {"include_usage": true}, "n": 1, "user": "u", "logprobs": null})");
  EXPECT_EQ(c.model, "m");
  EXPECT_EQ(*c.prompt_text, "hi");
  EXPECT_EQ(*c.max_tokens, 5);
  EXPECT_EQ(c.temperature, 0);
  EXPECT_EQ(c.top_p, 0.5);
  EXPECT_EQ(*c.seed, 3u);
  EXPECT_EQ(c.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(c.stream && c.include_usage);
  EXPECT_EQ(parse_openai_request(Endpoint::kCompletions, R"({"model": "m", "prompt": [1, 2, 3]})").prompt_tokens,
            (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(*parse_openai_request(Endpoint::kCompletions, R"({"model": "m", "prompt": ["x"]})").prompt_text, "x");
  const OpenAiRequest chat = parse_openai_request(
      Endpoint::kChat, R"({"model": "m", "messages": [{"role": "system", "content": "be brief"},
          {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
          "max_completion_tokens": 7})");
  ASSERT_EQ(chat.messages.size(), 2u);
  EXPECT_EQ(chat.messages[1]["content"], "ab");
  EXPECT_EQ(*chat.max_tokens, 7);
  EXPECT_FALSE(parse_openai_request(Endpoint::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})").max_tokens);
}

TEST(OpenAiRequest, AnswersWithOpenAisStatuses) {
  const Endpoint c = Endpoint::kCompletions, chat = Endpoint::kChat;
  EXPECT_EQ(status_of(c, "{\"model\": "), 400);                                       // malformed JSON
  EXPECT_EQ(status_of(c, "[1]"), 400);                                                // not an object
  EXPECT_EQ(status_of(c, R"({"prompt": "x"})"), 422);                                 // no model
  EXPECT_EQ(status_of(c, R"({"model": "m"})"), 422);                                  // no prompt
  EXPECT_EQ(status_of(c, R"({"model": 3, "prompt": "x"})"), 422);                     // wrong type
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "max_tokens": "5"})"), 422);
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "max_tokens": -1})"), 400);  // out of range
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "temperature": 2.5})"), 400);
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "top_p": 0})"), 400);
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "n": 3})"), 400);           // not supported
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "logprobs": 2})"), 400);
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "presence_penalty": 0.5})"), 400);
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "bogus": 1})"), 400);       // unknown field
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "stop": ["a","b","c","d","e"]})"), 400);
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": "x", "stop": [""]})"), 400);
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": ["a", "b"]})"), 400);            // batches of prompts
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": [1, -2]})"), 400);
  EXPECT_EQ(status_of(c, R"({"model": "m", "prompt": ""})"), 200);  // empty text: the tokenizer's to judge
  EXPECT_EQ(status_of(chat, R"({"model": "m", "messages": []})"), 400);
  EXPECT_EQ(status_of(chat, R"({"model": "m", "messages": [{"content": "x"}]})"), 422);
  EXPECT_EQ(status_of(chat, R"({"model": "m", "messages": [{"role": "wizard", "content": "x"}]})"), 400);
  EXPECT_EQ(status_of(chat, R"({"model": "m", "messages": [{"role": "user", "content": 5}]})"), 422);
  EXPECT_EQ(status_of(chat, R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})"), 400);
  EXPECT_EQ(status_of(chat, R"({"model": "m", "messages": [{"role": "user", "content": "x", "extra": 1}]})"), 400);
  EXPECT_EQ(status_of(chat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})"), 400);
  const ApiError e(404, "no", "model", "invalid_request_error", "model_not_found");
  EXPECT_EQ(e.body()["error"]["code"], "model_not_found");
  EXPECT_EQ(e.body()["error"]["param"], "model");
}

TEST(StopMatcher, HoldsBackPrefixesAndCutsAtTheFirstStop) {
  StopMatcher m({"END", "xy"});
  std::string out = m.push("abcE");
  EXPECT_EQ(out, "abc");  // "E" might start END
  out += m.push("N");
  EXPECT_EQ(out, "abc");
  out += m.push("Dtail");
  EXPECT_EQ(out, "abc");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("more"), "");
  StopMatcher n({"END"});
  EXPECT_EQ(n.push("EN"), "");
  EXPECT_EQ(n.push("x"), "ENx");  // not a stop after all
  EXPECT_EQ(n.push("E"), "");
  EXPECT_EQ(n.flush(), "E");
  EXPECT_FALSE(n.stopped());
  StopMatcher two({"bc", "abcd"});
  EXPECT_EQ(two.push("xabcd"), "x");  // the earliest stop wins ("abcd" at 1, before "bc" at 2)
}

model::LoadedModel tiny() {
  const auto config = loading::parse_model_config(moe::testing::tiny_config("mixtral"), "mixtral");
  return model::load_model(config, std::make_shared<model::SyntheticWeights>(config, 7));
}

std::vector<int32_t> drain(RequestStream& s, std::string* reason = nullptr) {
  std::vector<int32_t> tokens;
  for (StreamEvent e; s.next(e, std::chrono::seconds(30));) {
    if (e.token) tokens.push_back(*e.token);
    if (e.finished) {
      if (reason) *reason = e.finish_reason;
      break;
    }
  }
  return tokens;
}

TEST(ServingEngine, GivesEachRequestItsTokensAloneAndFreesCancelledOnes) {
  model::LoadedModel m = tiny();
  model::Transformer& t = *m.transformer;
  model::GenerationOptions o;
  o.max_new_tokens = 8;
  o.sampling = {0.9, 1.0, 5};
  const std::vector<int32_t> a = {1, 2, 3}, b = {4, 5};
  const auto alone_a = model::generate(t, a, o).tokens, alone_b = model::generate(t, b, o).tokens;
  ServingEngine engine(std::make_unique<engine::Scheduler>(t, t.make_kv_pool(4, 32)), 8);
  // Steps slowed until the cancel lands: the tiny model's 60 tokens take well under a
  // millisecond, so a test thread descheduled between submit and cancel saw them all finish.
  std::atomic<bool> cancelled{false};
  engine.set_step_observer([&](int64_t, double) {
    if (!cancelled.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  auto sa = engine.submit(a, o), sb = engine.submit(b, o);
  model::GenerationOptions long_one = o;
  long_one.max_new_tokens = 60;
  auto sc = engine.submit({7, 8, 9}, long_one);
  sc->cancel();
  cancelled = true;
  std::string reason;
  EXPECT_EQ(drain(*sa), alone_a);
  EXPECT_EQ(drain(*sb), alone_b);
  drain(*sc, &reason);
  EXPECT_EQ(reason, "cancelled");
  // Every block back: the stats after the engine's last step.
  for (int i = 0; i < 100 && engine.stats().kv_blocks_used > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_THROW(engine.submit({}, o), moe::Error);  // the scheduler's verdict reaches the caller
  engine.stop(true);
  EXPECT_THROW(engine.submit(a, o), moe::Error);  // stopped
}

TEST(ServingEngine, AFullQueueIsOverloaded) {
  model::LoadedModel m = tiny();
  model::Transformer& t = *m.transformer;
  model::GenerationOptions o;
  o.max_new_tokens = 200;
  // One sequence at a time: the rest wait, and past max_waiting submissions are refused.
  ServingEngine engine(std::make_unique<engine::Scheduler>(t, t.make_kv_pool(16, 64), engine::SchedulerOptions{1, 512}), 2);
  std::vector<std::shared_ptr<RequestStream>> streams;
  bool overloaded = false;
  for (int i = 0; i < 12 && !overloaded; ++i) {
    try {
      streams.push_back(engine.submit({1, 2, 3}, o));
    } catch (const Overloaded&) {
      overloaded = true;
    }
  }
  EXPECT_TRUE(overloaded);
  engine.cancel_all();
  for (auto& s : streams) drain(*s);
  engine.stop(true);
}

TEST(Metrics, WritesPrometheusTextFormat) {
  ServerMetrics m;
  m.request_done("/v1/completions", 200, 0.2);
  m.first_token(0.004);
  m.inter_token(0.03);
  m.tokens(5, 7);
  m.step(3, 0.01, {{"offload", {{"expert_uses", 10}, {"cache_hits", 4}, {"pinned_hits", 1}, {"bytes_host_to_device", 1024}}}});
  ServingStats s;
  s.running = 2;
  const std::string text = m.render(s);
  for (const char* want : {"moe_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1\n", "moe_running_sequences 2\n",
                           "moe_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n",
                           "moe_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1\n", "moe_inter_token_latency_seconds_count 1\n",
                           "moe_expert_device_hit_rate 0.5\n", "moe_bytes_copied_total{link=\"host_to_device\"} 1024\n",
                           "# TYPE moe_generation_tokens_total counter\n"})
    EXPECT_NE(text.find(want), std::string::npos) << want;
}

}  // namespace
}  // namespace moe::serve
