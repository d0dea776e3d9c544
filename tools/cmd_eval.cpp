// `moe eval`: perplexity of a model on a text file, and the parameters each token activates.
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "runtime/core/error.h"
#include "runtime/core/read_file.h"
#include "runtime/core/progress.h"
#include "runtime/model/default_model.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/perplexity.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"
#include "tools/offload_flags.h"

namespace moe::tools {
namespace {

struct Flags {
  std::string model, text;
  int window = 512;
  int64_t max_tokens = 8192;
  bool json = false;
  OffloadFlags offload;
};

void run(const Flags& f) {
  // Bounded: --text /dev/zero read forever (the tokens past --max-tokens are dropped anyway).
  const std::string text = read_file(f.text, "text", uint64_t(256) << 20);
  const auto dir = f.model.empty() ? model::default_model_dir() : std::filesystem::path(f.model);
  model::LoadedModel loaded = model::load_model(dir, f.offload.load_options());
  const auto tokenizer = tokenizer::load_tokenizer(loaded.files_dir);
  std::vector<int32_t> ids = tokenizer->encode(text);
  if (int64_t(ids.size()) > f.max_tokens) ids.resize(size_t(f.max_tokens));
  const int window = std::min(f.window, loaded.config.max_position_embeddings);
  OffloadFlags offload = f.offload;
  offload.context = window;
  engine::Engine session(loaded, offload, f.model.empty() ? "default" : dir.filename().string());
  explain_placement(session, offload, f.json);
  // int8/int4 weights: each window's logits beside the checkpoint's (the stats show the result).
  model::LogitComparison* compare = session.logit_comparison();
  ProgressBar progress("evaluating", ids.size());
  const model::Perplexity p = model::evaluate_perplexity(
      *loaded.transformer, ids, window, [&](int64_t done) { progress.set(uint64_t(done)); },
      [&](std::span<const int32_t> chunk, std::span<const float> logits) {
        if (compare) compare->add(chunk, 0, logits);
      });
  progress.finish();
  if (f.json) {
    nlohmann::json doc = session.stats_json();
    doc.update(nlohmann::json{{"model", f.model.empty() ? std::string("default") : f.model}, {"text", f.text},
                              {"tokens", ids.size()}, {"predicted", p.predicted}, {"windows", p.windows}, {"window", window},
                              {"nll_per_token", p.predicted ? p.nll / double(p.predicted) : 0.0},
                              {"perplexity", p.value()}});
    print_json(doc);
    return;
  }
  fmt::print("{}: perplexity {:.3f} over {} predicted tokens ({} windows of {})\n", f.text, p.value(), p.predicted,
             p.windows, window);
  if (compare)
    fmt::print("{}: perplexity {:.3f} with the checkpoint's weights ({:+.2f}%)\n", f.text,
               compare->result().reference_perplexity(), 100 * (p.value() / compare->result().reference_perplexity() - 1));
  fmt::print("{}", session.stats_text());
}

void setup(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  app.add_option("--model,-m", f->model, "model folder or expert store (default: the embedded model)");
  app.add_option("--text", f->text, "plain text file to score")->required()->check(CLI::ExistingFile);
  app.add_option("--window", f->window, "tokens per window (each from an empty cache)")->capture_default_str()
      ->check(whole_number(2, 1 << 20));
  app.add_option("--max-tokens", f->max_tokens, "score at most this many tokens of the text")->capture_default_str()
      ->check(whole_number(int64_t{1}, int64_t{1} << 30));
  app.add_flag("--json", f->json, "print one JSON document");
  add_offload_options(app, f->offload);
  app.callback([f] { run(*f); });
}

const CommandRegistration kEval("", "eval", "Perplexity of a model on a text file (and its active parameters)", setup);

}  // namespace
}  // namespace moe::tools
