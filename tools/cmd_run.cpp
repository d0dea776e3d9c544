// `moe run`: generate text from a prompt, streaming it as it is produced.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include "offload/executor/process_group.h"
#include "runtime/core/error.h"
#include "runtime/core/memory_usage.h"
#include "runtime/core/size_parse.h"
#include "runtime/engine/prompt_file.h"
#include "runtime/model/default_model.h"
#include "runtime/model/generator.h"
#include "runtime/model/model_loader.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"
#include "tools/offload_flags.h"

namespace moe::tools {
namespace {

struct RunFlags {
  std::string model;
  std::string prompt = "Once upon a time";
  int max_new_tokens = 32;
  uint64_t seed = 0;
  double temperature = 0.0;
  double top_p = 1.0;
  bool json = false;
  std::string logits_out;  // every step's logits, f32
  OffloadFlags offload;
  // --prompts: many sequences at once through the scheduler.
  std::string prompts;
  int max_batch = 16;
  int64_t max_step_tokens = 512;
  std::string kv_mem;  // "": room for every prompt at once
  int64_t kv_block = 16;
};

model::GenerationOptions generation_options(const RunFlags& flags, const model::LoadedModel& loaded,
                                            const tokenizer::Tokenizer& tokenizer) {
  model::GenerationOptions options;
  options.max_new_tokens = flags.max_new_tokens;
  options.sampling = {flags.temperature, flags.top_p, flags.seed};
  options.stop_tokens = loaded.config.eos_token_ids;
  if (auto eos = tokenizer.eos_token_id(); eos && options.stop_tokens.empty()) options.stop_tokens.push_back(*eos);
  return options;
}

// The check generate() and the scheduler make, made before the engine sizes anything by the
// context (a KV cache, a GPU's share of memory): a huge prompt is refused for what it is.
void check_context(const model::LoadedModel& loaded, size_t prompt_tokens, int max_new_tokens) {
  const int64_t limit = loaded.transformer->max_positions();
  MOE_CHECK(int64_t(prompt_tokens) + std::max(max_new_tokens, 1) <= limit, ErrorCode::kInvalidArgument,
            "{} prompt tokens and {} new ones pass the model's context of {} positions", prompt_tokens, max_new_tokens,
            limit);
}

// Every prompt of the file generated concurrently; each result printed as its sequence ends.
void run_prompts(const RunFlags& flags) {
  const bool use_default = flags.model.empty();
  const std::filesystem::path dir = use_default ? model::default_model_dir() : std::filesystem::path(flags.model);
  const std::vector<engine::PromptSpec> specs = engine::read_prompt_file(flags.prompts);
  MOE_CHECK(flags.offload.trace_out.empty() && flags.offload.replay_trace.empty(), ErrorCode::kUnsupported,
            "--trace-out and --replay-trace follow one sequence at a time: run them without --prompts");
  if (use_default && !flags.json) fmt::print(stderr, "note: running {}\n", model::default_model_description());
  start_ranks(flags.offload);
  model::LoadedModel loaded;
  offload::on_every_rank("load", [&] { loaded = model::load_model(dir, flags.offload.load_options()); });
  const auto tokenizer = tokenizer::load_tokenizer(loaded.files_dir);
  const model::GenerationOptions defaults = generation_options(flags, loaded, *tokenizer);

  struct Job {
    const engine::PromptSpec* spec;
    std::vector<int32_t> prompt;
    model::GenerationOptions options;
    engine::SequenceId id = 0;
    std::string reason;
  };
  std::vector<Job> jobs;
  int64_t longest = 0, kv_tokens = 0;
  for (const engine::PromptSpec& s : specs) {
    Job j{&s, tokenizer->encode(s.prompt), defaults};
    if (s.max_new_tokens) j.options.max_new_tokens = *s.max_new_tokens;
    if (s.temperature) j.options.sampling.temperature = *s.temperature;
    if (s.top_p) j.options.sampling.top_p = *s.top_p;
    if (s.seed) j.options.sampling.seed = *s.seed;
    j.options.stop_tokens.insert(j.options.stop_tokens.end(), s.stop_tokens.begin(), s.stop_tokens.end());
    try {
      check_context(loaded, j.prompt.size(), j.options.max_new_tokens);
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("prompt on line {}: {}", s.line, e.what()));
    }
    const int64_t total = int64_t(j.prompt.size()) + std::max(j.options.max_new_tokens, 1);
    longest = std::max(longest, total);
    kv_tokens += (total + flags.kv_block - 1) / flags.kv_block * flags.kv_block;
    jobs.push_back(std::move(j));
  }
  const loading::ModelConfig& c = loaded.config;
  const uint64_t token_bytes =
      model::KvBlockPool::token_bytes(c.num_layers, int64_t{c.kv_cache_heads()} * c.head_dim, c.kv_values_stored());
  const uint64_t kv_bytes = !flags.kv_mem.empty() ? parse_byte_size(flags.kv_mem) : uint64_t(kv_tokens) * token_bytes;
  OffloadFlags offload = flags.offload;
  offload.context = std::max<int64_t>(longest, int64_t(kv_bytes / token_bytes));  // a GPU keeps room for the whole pool
  offload.batch = flags.max_batch;
  engine::Engine session(loaded, offload, use_default ? "default" : dir.filename().string());
  explain_placement(session, offload, flags.json);
  const auto scheduler = session.make_scheduler(kv_bytes, flags.kv_block, {flags.max_batch, flags.max_step_tokens});
  for (Job& j : jobs) {
    try {
      j.id = scheduler->submit(j.prompt, j.options);
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("prompt on line {}: {}", j.spec->line, e.what()));
    }
  }

  const auto start = std::chrono::steady_clock::now();
  nlohmann::json results = nlohmann::json::array();
  const auto job_of = [&](engine::SequenceId id) -> Job& {
    return *std::find_if(jobs.begin(), jobs.end(), [&](const Job& j) { return j.id == id; });
  };
  while (!scheduler->idle())
    for (const engine::SequenceEvent& e : scheduler->step()) {
      if (!e.finished) continue;
      Job& j = job_of(e.id);
      j.reason = e.finish_reason;
      const std::vector<int32_t>& all = scheduler->tokens(e.id);
      const std::vector<int32_t> generated(all.begin() + int64_t(j.prompt.size()), all.end());
      const engine::SequenceStats s = scheduler->sequence_stats(e.id);
      const std::string text = tokenizer->decode(generated);
      if (flags.json) {
        results.push_back({{"line", j.spec->line}, {"prompt", j.spec->prompt}, {"prompt_tokens", s.prompt_tokens},
                           {"text", text}, {"tokens", generated}, {"stop_reason", j.reason},
                           {"queue_seconds", s.queue_seconds}, {"first_token_seconds", s.first_token_seconds},
                           {"total_seconds", s.total_seconds}, {"decode_tokens_per_second", s.decode_tokens_per_second()},
                           {"preemptions", s.preemptions}});
      } else {
        fmt::print("--- line {} ({}, {} prompt + {} generated tokens; first token after {:.3f} s, {:.1f} tok/s after it{})\n{}{}\n",
                   j.spec->line, j.reason, s.prompt_tokens, s.generated_tokens, s.first_token_seconds,
                   s.decode_tokens_per_second(), s.preemptions ? fmt::format(", preempted {}x", s.preemptions) : "",
                   j.spec->prompt, text);
        std::fflush(stdout);
      }
      scheduler->forget(e.id);
    }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  session.finish();
  const engine::SchedulerStats& st = scheduler->stats();
  const model::KvBlockPool& pool = scheduler->pool();
  const double kv_per_token = scheduler->kv_bytes_per_token();
  const double kv_theory = double(model::KvBlockPool::token_bytes(c.num_layers, pool.row_size(), pool.with_values()));
  if (flags.json) {
    nlohmann::json doc = session.stats_json();
    doc.update(nlohmann::json{{"model", use_default ? std::string("default") : dir.string()},
                              {"results", results},
                              {"sequences", jobs.size()},
                              {"generated_tokens", st.generated_tokens},
                              {"seconds", seconds},
                              {"tokens_per_second", double(st.generated_tokens) / seconds},
                              {"steps", st.steps},
                              {"max_running", st.max_running},
                              {"preemptions", st.preemptions},
                              {"kv_blocks", pool.num_blocks()},
                              {"kv_block_tokens", pool.block_tokens()},
                              {"kv_pool_bytes", pool.nbytes()},
                              {"peak_kv_blocks", st.peak_kv_blocks},
                              {"kv_bytes_per_token", kv_per_token},
                              {"kv_theoretical_bytes_per_token", kv_theory}});
    print_json(doc);
    return;
  }
  fmt::print(stderr,
             "[{} sequences, {} tokens generated in {:.2f} s: {:.1f} tok/s together | {} steps, at most {} at once, {} "
             "preemptions | KV {} in {} blocks of {} tokens, at peak {} blocks: {:.0f} bytes per token held, {:.0f} in "
             "theory]\n",
             jobs.size(), st.generated_tokens, seconds, double(st.generated_tokens) / seconds, st.steps, st.max_running,
             st.preemptions, format_bytes(pool.nbytes()), pool.num_blocks(), pool.block_tokens(), st.peak_kv_blocks,
             kv_per_token, kv_theory);
  fmt::print(stderr, "{}", session.stats_text());
}

void run(const RunFlags& flags) {
  if (!flags.prompts.empty()) return run_prompts(flags);
  const bool use_default = flags.model.empty();
  const std::filesystem::path dir = use_default ? model::default_model_dir() : std::filesystem::path(flags.model);
  if (use_default && !flags.json) fmt::print(stderr, "note: running {}\n", model::default_model_description());

  start_ranks(flags.offload);  // under mpirun: a plan that does not fit the ranks is refused before any weight is read
  // Every rank loads the dense weights and its own experts; under mpirun they agree that all
  // did before any runs (a rank that failed is named, with its cause, by rank 0).
  std::optional<model::LoadedModel> loaded_model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  OffloadFlags offload = flags.offload;
  std::unique_ptr<engine::Engine> engine;
  offload::on_every_rank("load", [&] {
    loaded_model.emplace(model::load_model(dir, flags.offload.load_options()));
    tokenizer = tokenizer::load_tokenizer(loaded_model->files_dir);
    prompt = tokenizer->encode(flags.prompt);
    check_context(*loaded_model, prompt.size(), flags.max_new_tokens);
    offload.context = int64_t(prompt.size()) + flags.max_new_tokens + 1;
    engine = std::make_unique<engine::Engine>(*loaded_model, offload, use_default ? "default" : dir.filename().string());
  });
  model::LoadedModel& loaded = *loaded_model;
  engine::Engine& session = *engine;
  explain_placement(session, offload, flags.json);

  model::GenerationOptions options = generation_options(flags, loaded, *tokenizer);
  if (offload::ProcessGroup* group = offload::process_group())
    options.agree_token = [group](int32_t token) {  // rank 0's token on every rank
      group->broadcast(&token, sizeof token, 0);
      return token;
    };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> logits_file(nullptr, std::fclose);
  if (!flags.logits_out.empty()) {
    logits_file.reset(std::fopen(flags.logits_out.c_str(), "wb"));
    MOE_CHECK(logits_file != nullptr, ErrorCode::kIo, "cannot write --logits-out {}", flags.logits_out);
    options.on_logits = [&](std::span<const float> logits) {
      MOE_CHECK(std::fwrite(logits.data(), sizeof(float), logits.size(), logits_file.get()) == logits.size(), ErrorCode::kIo,
                "cannot write --logits-out {}", flags.logits_out);
    };
  }

  tokenizer::StreamDecoder stream(*tokenizer);
  if (!flags.json) {
    fmt::print("{}", flags.prompt);
    std::fflush(stdout);
  }
  // Disk reads of the decode steps alone (the first token comes from the prefill): what a
  // model larger than memory costs per token, with loading and prefill left out.
  uint64_t read_at_first_token = 0;
  int64_t tokens_seen = 0;
  const model::Generation result = model::generate(*loaded.transformer, prompt, options, [&](int32_t token) {
    if (tokens_seen++ == 0) read_at_first_token = disk_read_bytes();
    const std::string piece = stream.push(token);
    if (!flags.json) {
      fmt::print("{}", piece);
      std::fflush(stdout);
    }
    return true;
  });
  const std::string tail = stream.flush();
  const model::GenerationStats& s = result.stats;
  const uint64_t decode_read = tokens_seen > 0 ? disk_read_bytes() - read_at_first_token : 0;
  if (logits_file) MOE_CHECK(std::fclose(logits_file.release()) == 0, ErrorCode::kIo, "cannot write --logits-out {}", flags.logits_out);
  session.finish();
  if (flags.json) {
    nlohmann::json doc = session.stats_json();
    doc.update(nlohmann::json{{"model", use_default ? std::string("default") : dir.string()},
                {"prompt", flags.prompt},
                {"prompt_tokens", s.prompt_tokens},
                {"text", tokenizer->decode(result.tokens)},
                {"tokens", result.tokens},
                {"stop_reason", result.stop_reason},
                {"prefill_tokens_per_second", s.prefill_tokens_per_second()},
                {"decode_tokens_per_second", s.decode_tokens_per_second()},
                {"prefill_seconds", s.prefill_seconds},
                {"decode_seconds", s.decode_seconds},
                {"peak_resident_bytes", s.peak_resident_bytes},
                {"decode_disk_read_bytes", decode_read}});
    print_json(doc);
    return;
  }
  fmt::print("{}\n", tail);
  // The text ends before the stats on stderr, also when both go to one pipe; text that could not
  // be written is the run's failure, said alone.
  MOE_CHECK(std::fflush(stdout) == 0 && !std::ferror(stdout), ErrorCode::kIo, "cannot write the output to standard output");
  fmt::print(stderr, "[{} prompt tokens, {:.1f} tok/s prefill | {} generated, {:.1f} tok/s decode | peak memory {}{}]\n",
             s.prompt_tokens, s.prefill_tokens_per_second(), s.generated_tokens, s.decode_tokens_per_second(),
             format_bytes(s.peak_resident_bytes),
             decode_read > 0 ? fmt::format(", decode read {} from disk", format_bytes(decode_read)) : "");
  fmt::print(stderr, "{}", session.stats_text());
}

void setup(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  app.add_option("--model,-m", flags->model, "Hugging Face model folder or expert store (default: the embedded model)")
      ->check(CLI::Validator([](std::string& v) { return v.empty() ? std::string("an empty path names no model") : std::string(); },
                             "PATH"));
  app.add_option("--prompt,-p", flags->prompt, "text to continue")->capture_default_str();
  app.add_option("-n,--max-new-tokens", flags->max_new_tokens, "tokens to generate")
      ->capture_default_str()->check(whole_number(0, 1 << 20));
  app.add_option("--seed", flags->seed, "random seed for sampling")->capture_default_str()->check(whole_number<uint64_t>(0));
  app.add_option("--temperature,-t", flags->temperature, "0 is greedy")->capture_default_str()->check(number(0, 100));
  app.add_option("--top-p", flags->top_p, "nucleus sampling mass")->capture_default_str()->check(number_above(0, 1));
  app.add_flag("--json", flags->json, "print one machine-readable JSON document instead of streaming");
  app.add_option("--logits-out", flags->logits_out,
                 "write each generated token's logits to this file (f32 rows of the vocabulary, this machine's byte order): "
                 "to compare runs bit for bit");
  app.add_option("--prompts", flags->prompts,
                 "generate every prompt of this file concurrently: one a line, or JSONL lines {\"prompt\", \"max_tokens\", "
                 "\"temperature\", \"top_p\", \"seed\", \"stop_token_ids\"} (the flags give the defaults)")
      ->check(CLI::ExistingFile);
  app.add_option("--max-batch", flags->max_batch, "with --prompts: sequences in one step")->capture_default_str()
      ->check(whole_number(1, 4096));
  app.add_option("--max-step-tokens", flags->max_step_tokens, "with --prompts: tokens in one step (decode tokens, then prefill chunks)")
      ->capture_default_str()->check(whole_number(int64_t{1}, int64_t{1} << 20));
  app.add_option("--kv-mem", flags->kv_mem, "with --prompts: KV cache budget, e.g. 2GiB (default: room for every prompt at once); "
                 "sequences wait, or the youngest is preempted and recomputed, when it is full");
  app.add_option("--kv-block", flags->kv_block, "with --prompts: tokens per KV block")->capture_default_str()
      ->check(whole_number(int64_t{1}, int64_t{1} << 16));
  add_offload_options(app, flags->offload);
  app.callback([flags] { run(*flags); });
}

const CommandRegistration kRun("", "run", "Generate text with a model (the embedded default when no --model)", setup);

}  // namespace
}  // namespace moe::tools
