#include "runtime/serve/openai_server.h"

#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <random>

#include "runtime/core/error.h"
#include "runtime/serve/api_error.h"
#include "runtime/serve/openai_request.h"
#include "runtime/serve/stop_matcher.h"

namespace moe::serve {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void send_json(ResponseWriter& w, int status, const json& body, const std::map<std::string, std::string>& headers = {}) {
  w.send(status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace), headers);
}

std::string sse(const json& chunk) { return "data: " + chunk.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

std::string path_of(const std::string& target) { return target.substr(0, target.find('?')); }

// "Bearer <key>", compared in time independent of where a wrong key differs.
bool authorized(const std::string& header, const std::string& key) {
  constexpr std::string_view kScheme = "Bearer ";
  if (header.size() != kScheme.size() + key.size() || header.compare(0, kScheme.size(), kScheme) != 0) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(header[kScheme.size() + i] ^ key[i]);
  return diff == 0;
}

// "stop_token" ends a sequence on an end-of-sequence token: OpenAI's "stop", as for a stop string.
std::string finish_reason_of(const std::string& engine_reason) { return engine_reason == "length" ? "length" : "stop"; }

}  // namespace

OpenAiServer::OpenAiServer(ServingEngine& engine, const tokenizer::Tokenizer& tokenizer, ChatRenderer chat,
                           OpenAiServerOptions options, ServerMetrics& metrics)
    : engine_(engine), tokenizer_(tokenizer), chat_(std::move(chat)), options_(std::move(options)), metrics_(metrics) {}

void OpenAiServer::handle(const HttpRequest& request, ResponseWriter& writer) {
  const auto start = Clock::now();
  const std::string path = path_of(request.target);
  int status = 200;
  try {
    if (path == "/health") {
      if (request.method != "GET") throw ApiError(405, "use GET /health");
      status = shutting_down_ ? 503 : 200;
      send_json(writer, status, {{"status", shutting_down_ ? "shutting down" : "ok"}});
      return;
    }
    if (path == "/metrics") {
      if (request.method != "GET") throw ApiError(405, "use GET /metrics");
      writer.send(200, "text/plain; version=0.0.4", metrics_.render(engine_.stats()));
      return;
    }
    if (path.rfind("/v1/", 0) != 0) throw ApiError(404, fmt::format("no route {} {}", request.method, path), {}, "not_found_error");
    if (!options_.api_key.empty() && !authorized(request.header("authorization"), options_.api_key))
      throw ApiError(401, "a valid API key is needed: 'Authorization: Bearer <key>'", {}, "authentication_error",
                     "invalid_api_key");
    const json model = {{"id", options_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "moe"}};
    if (path == "/v1/models") {
      if (request.method != "GET") throw ApiError(405, "use GET /v1/models");
      send_json(writer, 200, {{"object", "list"}, {"data", json::array({model})}});
      return;
    }
    if (path == "/v1/models/" + options_.model_name) {
      if (request.method != "GET") throw ApiError(405, "use GET /v1/models/{model}");
      send_json(writer, 200, model);
      return;
    }
    if (path == "/v1/completions" || path == "/v1/chat/completions") {
      if (request.method != "POST") throw ApiError(405, fmt::format("use POST {}", path));
      generate(request, writer, path == "/v1/chat/completions");
      metrics_.request_done(path, 200, seconds_since(start));
      return;
    }
    throw ApiError(404, fmt::format("no route {} {}", request.method, path), {}, "not_found_error");
  } catch (const ApiError& e) {
    status = e.status();
    using Headers = std::map<std::string, std::string>;
    const bool retry = status == 429 || status == 503;  // overloaded or stopping: come back in a second
    send_json(writer, status, e.body(), retry ? Headers{{"Retry-After", "1"}} : Headers{});
  }
  metrics_.request_done(path, status, seconds_since(start));
}

void OpenAiServer::generate(const HttpRequest& http, ResponseWriter& writer, bool chat) {
  if (shutting_down_) throw ApiError(503, "the server is shutting down", {}, "server_error");
  const auto arrival = Clock::now();
  const OpenAiRequest r = parse_openai_request(chat ? Endpoint::kChat : Endpoint::kCompletions, http.body);
  if (r.model != options_.model_name)
    throw ApiError(404, fmt::format("The model '{}' does not exist (this server serves '{}')", r.model, options_.model_name), "model",
                   "invalid_request_error", "model_not_found");

  std::vector<int32_t> prompt;
  if (chat) {
    std::string text;
    try {
      text = chat_(r.messages, true);
    } catch (const Error& e) {
      throw ApiError(400, fmt::format("the chat template refused the messages: {}", e.what()), "messages");
    }
    prompt = tokenizer_.encode(text, false);
  } else if (r.prompt_text) {
    prompt = tokenizer_.encode(*r.prompt_text, true);
  } else {
    prompt = r.prompt_tokens;
    for (const int32_t t : prompt)
      if (t >= tokenizer_.vocab_size()) throw ApiError(400, fmt::format("token id {} is outside the vocabulary", t), "prompt");
  }
  if (prompt.empty()) throw ApiError(400, "the prompt encodes to no tokens", chat ? "messages" : "prompt");
  const int64_t context = options_.context;
  if (int64_t(prompt.size()) >= context)
    throw ApiError(400,
                   fmt::format("This model's maximum context length is {} tokens. However, your prompt is {} tokens.", context,
                               prompt.size()),
                   chat ? "messages" : "prompt", "invalid_request_error", "context_length_exceeded");
  const int64_t max_tokens = r.max_tokens.value_or(chat ? context - int64_t(prompt.size()) : 16);
  if (int64_t(prompt.size()) + max_tokens > context)
    throw ApiError(400,
                   fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the "
                               "prompt, {} in the completion).",
                               context, int64_t(prompt.size()) + max_tokens, prompt.size(), max_tokens),
                   "max_tokens", "invalid_request_error", "context_length_exceeded");

  model::GenerationOptions options;
  options.max_new_tokens = int(max_tokens);
  options.sampling.temperature = r.temperature;
  options.sampling.top_p = r.top_p;
  options.sampling.seed = r.seed ? *r.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull + next_id_.load();
  options.stop_tokens = options_.stop_tokens;

  std::shared_ptr<RequestStream> stream;
  try {
    stream = engine_.submit(prompt, options);
  } catch (const Overloaded& e) {
    throw ApiError(429, fmt::format("the server is busy ({}); retry shortly", e.what()), {}, "rate_limit_error");
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kUnsupported) throw ApiError(503, e.what(), {}, "server_error");
    throw ApiError(400, e.what(), chat ? "messages" : "prompt");
  }

  const std::string id = fmt::format("{}-{:x}{:08x}", chat ? "chatcmpl" : "cmpl", next_id_++, uint32_t(std::random_device{}()));
  const int64_t created = int64_t(std::time(nullptr));
  const char* object = chat ? (r.stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  const auto chunk_of = [&](const std::string& text, const json& finish) {
    json choice = {{"index", 0}, {"finish_reason", finish}};
    if (chat) {
      choice["delta"] = text.empty() && !finish.is_null() ? json::object() : json{{"content", text}};
      choice["logprobs"] = nullptr;
    } else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    return json{{"id", id}, {"object", object}, {"created", created}, {"model", options_.model_name}, {"choices", {choice}}};
  };
  if (r.stream) {
    if (!writer.start_stream(200, "text/event-stream")) {
      stream->cancel();
      return;
    }
    if (chat) {
      json first = chunk_of("", nullptr);
      first["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
      if (!writer.write_chunk(sse(first))) {
        stream->cancel();
        return;
      }
    }
  }

  tokenizer::StreamDecoder decoder(tokenizer_);
  StopMatcher stops(r.stop);
  std::string text;  // the whole completion (non-streaming)
  int64_t generated = 0;
  std::string reason;
  auto last_token = arrival;
  const auto deliver = [&](const std::string& piece) {
    if (piece.empty()) return true;
    if (!r.stream) {
      text += piece;
      return true;
    }
    return writer.write_chunk(sse(chunk_of(piece, nullptr)));
  };
  for (;;) {
    StreamEvent e;
    if (!stream->next(e, std::chrono::seconds(1))) {
      // Nothing for a second (queued, a long prefill): a comment line finds a client gone.
      if (r.stream && !writer.write_chunk(": waiting\n\n")) {
        stream->cancel();
        return;
      }
      continue;
    }
    if (e.token) {
      ++generated;
      const auto now = Clock::now();
      if (generated == 1)
        metrics_.first_token(std::chrono::duration<double>(now - arrival).count());
      else
        metrics_.inter_token(std::chrono::duration<double>(now - last_token).count());
      last_token = now;
      // An end-of-sequence token ends the text without being part of it.
      const bool eos = e.finished && e.finish_reason == "stop_token";
      if (!eos && !deliver(stops.push(decoder.push(*e.token)))) {
        stream->cancel();
        return;
      }
      if (stops.stopped()) {
        stream->cancel();  // the rest of the sequence is not wanted
        reason = "stop";
        break;
      }
    }
    if (e.finished) {
      if (e.finish_reason.rfind("error", 0) == 0) {
        if (r.stream) {
          writer.write_chunk(sse({{"error", {{"message", e.finish_reason}, {"type", "server_error"}}}}));
          writer.end_stream();
          return;
        }
        throw ApiError(500, e.finish_reason, {}, "server_error");
      }
      if (!deliver(stops.push(decoder.flush())) || !deliver(stops.flush())) return;
      reason = finish_reason_of(e.finish_reason);
      break;
    }
  }
  metrics_.tokens(int64_t(prompt.size()), generated);
  const json usage = {{"prompt_tokens", prompt.size()}, {"completion_tokens", generated},
                      {"total_tokens", int64_t(prompt.size()) + generated}};
  if (r.stream) {
    if (!writer.write_chunk(sse(chunk_of("", reason)))) return;
    if (r.include_usage) {
      json last = chunk_of("", nullptr);
      last["choices"] = json::array();
      last["usage"] = usage;
      if (!writer.write_chunk(sse(last))) return;
    }
    writer.write_chunk("data: [DONE]\n\n");
    writer.end_stream();
    return;
  }
  json choice = {{"index", 0}, {"finish_reason", reason}, {"logprobs", nullptr}};
  if (chat)
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  else
    choice["text"] = text;
  send_json(writer, 200,
            {{"id", id}, {"object", object}, {"created", created}, {"model", options_.model_name}, {"choices", {choice}},
             {"usage", usage}});
}

}  // namespace moe::serve
