// `moe profile`: runs prompts through a model and records its router's choices as a trace.
#include <fmt/format.h>

#include <fstream>

#include "runtime/core/error.h"
#include "offload/executor/routing_trace.h"
#include "runtime/core/progress.h"
#include "runtime/model/generator.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/resident_experts.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"
#include "tools/offload_flags.h"

namespace moe::tools {
namespace {

struct Flags {
  std::string model, prompts, output;
  int max_new_tokens = 32;
  int guess_depth = 3;
  int guess_count = 0;  // ranked experts a guess; 0: twice top-k
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
  // The routing, and what the gates of the next layers guess from each MoE layer's input
  // (recorded beside it, so `moe sim --prefetch gate` and `moe predict eval` judge a real
  // predictor). Installed before the engine, which chains its hook after ours and undoes both.
  model::Transformer& transformer = *loaded.transformer;
  const std::string name = std::filesystem::path(f.model).filename().string();
  offload::TraceRecorder recorder(f.output, loaded.config, name, "moe profile " + name);
  transformer.set_routing_hook(recorder.hook());
  model::ResidentExperts resident(transformer.weights(), loaded.config.activation);
  // 2 x top-k ranked experts a guess by default, so a prefetcher of more than top-k can be judged too.
  const int ranked = f.guess_count > 0 ? f.guess_count : 2 * std::max(1, loaded.config.num_experts_per_tok);
  offload::GateGuessRecorder guesses(transformer, resident, recorder, f.guess_depth, std::min(loaded.config.num_experts, ranked));
  // The recorder computes through ResidentExperts, which does not run gpt-oss's fused experts:
  // they keep the model's own runner and record the routing alone.
  const bool record_guesses = f.guess_depth > 0 && loaded.config.family != loading::ModelFamily::kGptOss &&
                              loaded.config.num_sparse_layers() > 1;
  if (record_guesses) transformer.set_expert_runner(&guesses);
  OffloadFlags flags;
  engine::Engine session(loaded, flags, name);
  ProgressBar progress("profiling", prompts.size());
  int64_t tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    session.begin_sequence(int64_t(i));
    recorder.begin_sequence(int64_t(i));
    model::GenerationOptions options;
    options.max_new_tokens = f.max_new_tokens;
    const auto result = model::generate(*loaded.transformer, tokenizer->encode(prompts[i]), options, [](int32_t) { return true; });
    tokens += result.stats.prompt_tokens + int64_t(result.tokens.size());
    progress.advance(1);
  }
  session.finish();
  recorder.finish();
  const int depth = record_guesses ? std::min(f.guess_depth, loaded.config.num_sparse_layers() - 1) : 0;
  if (f.json) {
    print_json({{"trace", f.output}, {"prompts", prompts.size()}, {"tokens", tokens}, {"gate_guesses_ahead", depth},
                {"stats", session.stats_json()}});
    return;
  }
  fmt::print("{}: {} prompts, {} tokens of routing recorded", f.output, prompts.size(), tokens);
  if (depth > 0) fmt::print(", with the gate guesses for 1 to {} layers ahead", depth);
  fmt::print("\n");
  if (!loaded.quantization.empty()) fmt::print("{}\n", loaded.quantization.describe());
}

void setup(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  app.add_option("--model,-m", f->model, "model folder or expert store")->required();
  app.add_option("--prompts", f->prompts, "text file, one prompt per line")->required()->check(CLI::ExistingFile);
  app.add_option("-o,--output", f->output, "trace file to write")->required();
  app.add_option("-n,--max-new-tokens", f->max_new_tokens, "tokens generated per prompt (greedy)")->capture_default_str()->check(whole_number(0, 1 << 20));
  app.add_option("--guesses-ahead", f->guess_depth,
                 "record what the routers of the next 1 to N MoE layers guess from each layer's input (0: routing only)")
      ->capture_default_str()->check(whole_number(0, 8));
  app.add_option("--guesses-ranked", f->guess_count,
                 "experts each recorded guess ranks, best first (default: twice the model's experts per token)")
      ->check(whole_number(1, 1 << 16));
  app.add_flag("--json", f->json, "print one JSON document");
  add_weight_options(app, f->weights);
  app.callback([f] { run(*f); });
}

const CommandRegistration kProfile("", "profile", "Record a model's routing over prompts as a router trace", setup);

}  // namespace
}  // namespace moe::tools
