// `moe profile`: runs prompts through a model and records its router's choices as a trace.
#include <fmt/format.h>

#include <fstream>

#include "runtime/core/error.h"
#include "runtime/core/progress.h"
#include "runtime/model/generator.h"
#include "runtime/model/model_loader.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"
#include "tools/offload_flags.h"

namespace moe::tools {
namespace {

struct Flags {
  std::string model, prompts, output;
  int max_new_tokens = 32;
  bool json = false;
  WeightFlags weights;
};

void run(const Flags& f) {
  std::ifstream in(f.prompts);
  MOE_CHECK(in.is_open(), ErrorCode::kNotFound, "cannot open {}", f.prompts);
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) prompts.push_back(line);
  MOE_CHECK(!prompts.empty(), ErrorCode::kInvalidArgument, "{} holds no prompt (one per line)", f.prompts);

  model::LoadedModel loaded = model::load_model(f.model, f.weights.load_options());
  const auto tokenizer = tokenizer::load_tokenizer(loaded.files_dir);
  OffloadFlags flags;
  flags.trace_out = f.output;
  engine::Engine session(loaded, flags, std::filesystem::path(f.model).filename().string());
  ProgressBar progress("profiling", prompts.size());
  int64_t tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    session.begin_sequence(int64_t(i));
    model::GenerationOptions options;
    options.max_new_tokens = f.max_new_tokens;
    const auto result = model::generate(*loaded.transformer, tokenizer->encode(prompts[i]), options, [](int32_t) { return true; });
    tokens += result.stats.prompt_tokens + int64_t(result.tokens.size());
    progress.advance(1);
  }
  session.finish();
  if (f.json) {
    print_json({{"trace", f.output}, {"prompts", prompts.size()}, {"tokens", tokens}, {"stats", session.stats_json()}});
    return;
  }
  fmt::print("{}: {} prompts, {} tokens of routing recorded\n", f.output, prompts.size(), tokens);
  if (!loaded.quantization.empty()) fmt::print("{}\n", loaded.quantization.describe());
}

void setup(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  app.add_option("--model,-m", f->model, "model folder or expert store")->required();
  app.add_option("--prompts", f->prompts, "text file, one prompt per line")->required()->check(CLI::ExistingFile);
  app.add_option("-o,--output", f->output, "trace file to write")->required();
  app.add_option("-n,--max-new-tokens", f->max_new_tokens, "tokens generated per prompt (greedy)")->capture_default_str()->check(whole_number(0, 1 << 20));
  app.add_flag("--json", f->json, "print one JSON document");
  add_weight_options(app, f->weights);
  app.callback([f] { run(*f); });
}

const CommandRegistration kProfile("", "profile", "Record a model's routing over prompts as a router trace", setup);

}  // namespace
}  // namespace moe::tools
