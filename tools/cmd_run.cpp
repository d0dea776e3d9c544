// `moe run`: generate text from a prompt, streaming it as it is produced.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "runtime/core/error.h"
#include "runtime/core/size_parse.h"
#include "runtime/model/default_model.h"
#include "runtime/model/generator.h"
#include "runtime/model/model_loader.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/command.h"
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
  OffloadFlags offload;
};

void run(const RunFlags& flags) {
  const bool use_default = flags.model.empty();
  const std::filesystem::path dir = use_default ? model::default_model_dir() : std::filesystem::path(flags.model);
  if (use_default && !flags.json) fmt::print(stderr, "note: running {}\n", model::default_model_description());

  model::LoadedModel loaded = model::load_model(dir, flags.offload.load_options());
  const auto tokenizer = tokenizer::load_tokenizer(loaded.files_dir);
  const std::vector<int32_t> prompt = tokenizer->encode(flags.prompt);
  OffloadFlags offload = flags.offload;
  offload.context = int64_t(prompt.size()) + flags.max_new_tokens + 1;
  engine::Engine session(loaded, offload, use_default ? "default" : dir.filename().string());

  model::GenerationOptions options;
  options.max_new_tokens = flags.max_new_tokens;
  options.sampling = {flags.temperature, flags.top_p, flags.seed};
  options.stop_tokens = loaded.config.eos_token_ids;
  if (auto eos = tokenizer->eos_token_id(); eos && options.stop_tokens.empty()) options.stop_tokens.push_back(*eos);

  tokenizer::StreamDecoder stream(*tokenizer);
  if (!flags.json) {
    fmt::print("{}", flags.prompt);
    std::fflush(stdout);
  }
  const model::Generation result = model::generate(*loaded.transformer, prompt, options, [&](int32_t token) {
    const std::string piece = stream.push(token);
    if (!flags.json) {
      fmt::print("{}", piece);
      std::fflush(stdout);
    }
    return true;
  });
  const std::string tail = stream.flush();
  const model::GenerationStats& s = result.stats;
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
                {"peak_resident_bytes", s.peak_resident_bytes}});
    print_json(doc);
    return;
  }
  fmt::print("{}\n", tail);
  std::fflush(stdout);  // the text ends before the stats on stderr, also when both go to one pipe
  fmt::print(stderr, "[{} prompt tokens, {:.1f} tok/s prefill | {} generated, {:.1f} tok/s decode | peak memory {}]\n",
             s.prompt_tokens, s.prefill_tokens_per_second(), s.generated_tokens, s.decode_tokens_per_second(),
             format_bytes(s.peak_resident_bytes));
  fmt::print(stderr, "{}", session.stats_text());
}

void setup(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  app.add_option("--model,-m", flags->model, "Hugging Face model folder or expert store (default: the embedded model)");
  app.add_option("--prompt,-p", flags->prompt, "text to continue")->capture_default_str();
  app.add_option("-n,--max-new-tokens", flags->max_new_tokens, "tokens to generate")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--seed", flags->seed, "random seed for sampling")->capture_default_str();
  app.add_option("--temperature,-t", flags->temperature, "0 is greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", flags->top_p, "nucleus sampling mass")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_flag("--json", flags->json, "print one machine-readable JSON document instead of streaming");
  add_offload_options(app, flags->offload);
  app.callback([flags] { run(*flags); });
}

const CommandRegistration kRun("", "run", "Generate text with a model (the embedded default when no --model)", setup);

}  // namespace
}  // namespace moe::tools
