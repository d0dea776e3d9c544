// `moe serve`: the OpenAI-compatible HTTP server over the engine (runtime/serve).
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <thread>

#include "offload/executor/process_group.h"
#include "runtime/core/error.h"
#include "runtime/core/size_parse.h"
#include "runtime/engine/scheduler_ranks.h"
#include "runtime/model/default_model.h"
#include "runtime/model/synthetic_weights.h"
#include "runtime/serve/http_server.h"
#include "runtime/serve/openai_server.h"
#include "runtime/serve/serving_engine.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/chat_renderer.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"
#include "tools/offload_flags.h"

namespace moe::tools {
namespace {

struct ServeFlags {
  std::string model, config, served_name, host = "127.0.0.1", api_key, kv_mem;
  int port = 8000;
  int max_batch = 16;
  int64_t max_step_tokens = 512, kv_block = 16, context = 0;
  int max_waiting = 256, max_connections = 512;
  double shutdown_grace = 30;
  OffloadFlags offload;
};

void serve(const ServeFlags& f) {
  MOE_CHECK(f.config.empty() || f.model.empty(), ErrorCode::kInvalidArgument, "give --model or --config, not both");
  const bool use_default = f.model.empty();
  const std::filesystem::path dir = use_default ? model::default_model_dir() : std::filesystem::path(f.model);
  // Under mpirun every rank loads the dense weights and its own experts and runs a scheduler;
  // rank 0 serves HTTP and its scheduler leads the others' (runtime/engine/scheduler_ranks.h).
  start_ranks(f.offload);
  model::LoadedModel loaded;
  offload::on_every_rank("load", [&] {
    if (!f.config.empty()) {
      // A shape with synthetic weights (benchmarks): the embedded model's tokenizer speaks for it.
      const auto config = loading::load_model_config(f.config);
      loaded = model::load_model(config, std::make_shared<model::SyntheticWeights>(config, 1), f.offload.load_options());
      loaded.files_dir = model::default_model_dir();
    } else {
      loaded = model::load_model(dir, f.offload.load_options());
    }
  });
  const auto tokenizer = tokenizer::load_tokenizer(loaded.files_dir);
  MOE_CHECK(tokenizer->vocab_size() <= loaded.config.vocab_size, ErrorCode::kInvalidArgument,
            "the tokenizer has {} tokens, the model's vocabulary {}", tokenizer->vocab_size(), loaded.config.vocab_size);
  MOE_CHECK(f.config.empty() || tokenizer->vocab_size() == loaded.config.vocab_size, ErrorCode::kInvalidArgument,
            "--config: the synthetic model speaks the embedded tokenizer's {} tokens; set its vocab_size to that (it has {})",
            tokenizer->vocab_size(), loaded.config.vocab_size);
  const loading::ModelConfig& c = loaded.config;
  const int64_t model_context = c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096;
  const int64_t context = f.context > 0 ? std::min(f.context, model_context) : model_context;
  const uint64_t token_bytes =
      model::KvBlockPool::token_bytes(c.num_layers, int64_t{c.kv_cache_heads()} * c.head_dim, c.kv_values_stored());
  // Default KV budget: the whole batch at full context, at most 2 GiB (and one full context at least).
  const uint64_t kv_bytes = !f.kv_mem.empty() ? parse_byte_size(f.kv_mem)
      : std::max(uint64_t(context) * token_bytes, std::min(uint64_t(f.max_batch) * uint64_t(context) * token_bytes, uint64_t(2) << 30));
  OffloadFlags offload = f.offload;
  MOE_CHECK(offload.trace_out.empty() && offload.replay_trace.empty(), ErrorCode::kUnsupported,
            "--trace-out and --replay-trace follow one sequence at a time: the server runs many");
  offload.context = int64_t(kv_bytes / token_bytes);
  const std::string name = !f.served_name.empty() ? f.served_name
                           : !f.config.empty() ? std::filesystem::path(f.config).stem().string()
                           : use_default ? "default" : dir.filename().string();
  offload.batch = f.max_batch;
  std::unique_ptr<engine::Engine> built;
  offload::on_every_rank("start the engine", [&] { built = std::make_unique<engine::Engine>(loaded, offload, name); });
  engine::Engine& session = *built;
  explain_placement(session, offload, false);
  auto scheduler = session.make_scheduler(kv_bytes, f.kv_block, {f.max_batch, f.max_step_tokens});
  offload::ProcessGroup* group = offload::process_group();
  if (group && group->rank() != 0) {  // follow rank 0's scheduler until it stops serving
    std::signal(SIGINT, SIG_IGN);  // mpirun passes ^C on to every rank: rank 0 decides when to stop
    std::signal(SIGTERM, SIG_IGN);
    engine::follow_rank_zero(*scheduler, *group);
    session.finish();
    return;
  }
  std::optional<engine::RankLeader> leader;
  serve::IdleTick heartbeat;
  if (group) {
    leader.emplace(*group);
    scheduler->set_agreement(&*leader);
    heartbeat = {std::chrono::milliseconds(std::max<int64_t>(10, int64_t(group->timeout() * 250))), [&] { leader->heartbeat(); }};
  }
  serve::ServingEngine engine(std::move(scheduler), f.max_waiting, heartbeat);
  serve::ServerMetrics metrics;
  engine.set_step_observer([&](int64_t tokens, double seconds) { metrics.step(tokens, seconds, session.stats_json()); });

  serve::OpenAiServerOptions options;
  options.model_name = name;
  options.context = context;
  options.stop_tokens = c.eos_token_ids;
  if (auto eos = tokenizer->eos_token_id(); eos && options.stop_tokens.empty()) options.stop_tokens.push_back(*eos);
  options.api_key = f.api_key;
  serve::OpenAiServer api(engine, *tokenizer, chat_renderer(loaded.files_dir, *tokenizer), options, metrics);

  serve::HttpServerOptions http;
  http.host = f.host;
  http.port = uint16_t(f.port);
  http.max_connections = f.max_connections;
  serve::HttpServer server(http, [&](const serve::HttpRequest& r, serve::ResponseWriter& w) { api.handle(r, w); });
  // The port line is what scripts wait for (and read an ephemeral --port 0 from).
  fmt::print("moe serve: {} on http://{}:{} (context {}, batch {}, KV {} in blocks of {})\n", name, f.host, server.port(),
             context, f.max_batch, format_bytes(kv_bytes), f.kv_block);
  std::fflush(stdout);

  // SIGINT/SIGTERM: no new requests; those running get `shutdown_grace` seconds, then are cancelled.
  std::mutex mutex;
  std::condition_variable done;
  bool finished = false;
  std::thread grace;
  server.run([&] {
    api.begin_shutdown();
    engine.refuse_new();
    fmt::print(stderr, "moe serve: stopping; running requests get {:.0f} s to finish\n", f.shutdown_grace);
    grace = std::thread([&] {
      std::unique_lock lock(mutex);
      if (!done.wait_for(lock, std::chrono::duration<double>(f.shutdown_grace), [&] { return finished; })) engine.cancel_all();
    });
  });
  {
    std::lock_guard lock(mutex);
    finished = true;
  }
  done.notify_all();
  if (grace.joinable()) grace.join();
  engine.stop(true);
  if (leader) leader->finish();  // after the last step: the engine thread has ended
  session.finish();
}

void setup(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  app.add_option("--model,-m", f->model, "Hugging Face model folder or expert store (default: the embedded model)")
      ->check(CLI::Validator([](std::string& v) { return v.empty() ? std::string("an empty path names no model") : std::string(); },
                             "PATH"));
  app.add_option("--config", f->config,
                 "config.json of a shape to serve with synthetic weights and the embedded tokenizer (benchmarks; its "
                 "vocab_size must be the tokenizer's)")->check(CLI::ExistingFile);
  app.add_option("--served-model-name", f->served_name, "the model id clients name (default: the folder's name, or 'default')");
  app.add_option("--host", f->host, "address to listen on")->capture_default_str();
  app.add_option("--port", f->port, "port to listen on (0: any free one, printed)")->capture_default_str()->check(whole_number(0, 65535));
  app.add_option("--api-key", f->api_key, "require 'Authorization: Bearer KEY' on /v1/*");
  app.add_option("--max-batch", f->max_batch, "sequences in one step")->capture_default_str()->check(whole_number(1, 4096));
  app.add_option("--max-step-tokens", f->max_step_tokens, "tokens in one step (decode tokens, then prefill chunks)")
      ->capture_default_str()->check(whole_number(int64_t{1}, int64_t{1} << 20));
  app.add_option("--kv-mem", f->kv_mem, "KV cache budget, e.g. 2GiB (default: the batch at full context, at most 2 GiB)");
  app.add_option("--kv-block", f->kv_block, "tokens per KV block")->capture_default_str()->check(whole_number(int64_t{1}, int64_t{1} << 16));
  app.add_option("--context", f->context, "most prompt + completion tokens of a request (default and limit: the model's)")
      ->check(whole_number(int64_t{1}, int64_t{1} << 24));
  app.add_option("--max-waiting", f->max_waiting, "requests that may wait for the batch before new ones get 429")
      ->capture_default_str()->check(whole_number(1, 1 << 20));
  app.add_option("--max-connections", f->max_connections, "open connections before new ones get 503")
      ->capture_default_str()->check(whole_number(1, 1 << 16));
  app.add_option("--shutdown-grace", f->shutdown_grace, "seconds running requests get to finish after SIGTERM")
      ->capture_default_str()->check(number(0, 86400));
  add_offload_options(app, f->offload);
  app.callback([f] { serve(*f); });
}

const CommandRegistration kServe("", "serve", "Serve the model over OpenAI's HTTP API (completions, chat, streaming, metrics)",
                                 setup);

}  // namespace
}  // namespace moe::tools
