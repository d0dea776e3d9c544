#pragma once
// OpenAI's HTTP API over the serving engine: POST /v1/completions and /v1/chat/completions
// (whole, or streamed as server-sent events ending in `data: [DONE]`), GET /v1/models,
// /health and /metrics. Each request is one sequence of the engine's batch; a streaming client
// that goes away cancels its sequence. Errors are OpenAI's error objects with their HTTP status.
#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "runtime/serve/http_server.h"
#include "runtime/serve/metrics.h"
#include "runtime/serve/serving_engine.h"
#include "runtime/tokenizer/tokenizer.h"

namespace moe::serve {

// Renders chat messages ([{role, content}]) into the prompt text (the model's chat template).
using ChatRenderer = std::function<std::string(const nlohmann::json& messages, bool add_generation_prompt)>;

struct OpenAiServerOptions {
  std::string model_name = "default";  // what /v1/models lists and requests name
  int64_t context = 4096;              // most prompt + completion tokens of one request
  std::vector<int32_t> stop_tokens;    // the model's end-of-sequence tokens
  std::string api_key;                 // non-empty: /v1/* needs "Authorization: Bearer <key>"
};

class OpenAiServer {
 public:
  OpenAiServer(ServingEngine& engine, const tokenizer::Tokenizer& tokenizer, ChatRenderer chat, OpenAiServerOptions options,
               ServerMetrics& metrics);
  void handle(const HttpRequest& request, ResponseWriter& writer);
  // New generation requests get 503 from now on; those running go on.
  void begin_shutdown() { shutting_down_.store(true); }

 private:
  void generate(const HttpRequest& request, ResponseWriter& writer, bool chat);
  ServingEngine& engine_;
  const tokenizer::Tokenizer& tokenizer_;
  ChatRenderer chat_;
  OpenAiServerOptions options_;
  ServerMetrics& metrics_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace moe::serve
