// `moe predict eval`: how well each routing predictor guesses the experts of the next layers,
// trained on one trace and tested on another.
#include <fmt/format.h>

#include <fstream>
#include <iterator>

#include "placement/predict/predict_eval.h"
#include "placement/predict/routing_predictor.h"
#include "placement/trace/importers.h"
#include "runtime/core/error.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"

namespace moe::tools {
namespace {

struct Options {
  std::string train, test;
  placement::PredictEvalOptions eval;
  bool in_sample = false, json = false;
};

// The same file, or two files with the same bytes.
bool same_trace(const std::filesystem::path& a, const std::filesystem::path& b) {
  std::error_code ec;
  if (std::filesystem::equivalent(a, b, ec)) return true;
  if (std::filesystem::file_size(a, ec) != std::filesystem::file_size(b, ec) || ec) return false;
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  return std::equal(std::istreambuf_iterator<char>(fa), std::istreambuf_iterator<char>(),
                    std::istreambuf_iterator<char>(fb), std::istreambuf_iterator<char>());
}

void run(const Options& o) {
  MOE_CHECK(o.in_sample || !same_trace(o.train, o.test), ErrorCode::kInvalidArgument,
            "--train and --test are the same trace, so every figure would be in-sample (pass --in-sample to measure that)");
  const placement::Trace train = placement::load_any_trace(o.train);
  const placement::Trace test = placement::load_any_trace(o.test);
  const auto scores = placement::evaluate_predictors(train, test, o.eval);
  const int E = test.model.num_experts;
  const int count = o.eval.count > 0 ? std::min(o.eval.count, E) : placement::default_guess_count(test);
  if (o.json) {
    nlohmann::json predictors = nlohmann::json::array();
    for (const auto& s : scores) {
      nlohmann::json ahead = nlohmann::json::array();
      for (size_t d = 0; d < s.ahead.size(); ++d)
        ahead.push_back({{"ahead", d + 1}, {"events", s.ahead[d].events}, {"precision", s.ahead[d].precision()},
                         {"recall", s.ahead[d].recall()}});
      predictors.push_back({{"name", s.name}, {"available", s.available}, {"ahead", ahead}, {"learnt", s.learnt}});
    }
    print_json({{"train", o.train}, {"test", o.test}, {"in_sample", o.in_sample},
                {"train_tokens", train.tokens.size()}, {"train_sequences", placement::count_sequences(train)},
                {"test_tokens", test.tokens.size()}, {"test_sequences", placement::count_sequences(test)},
                {"layers", test.model.num_layers}, {"experts", E}, {"guesses_per_token", count},
                {"predictors", predictors}});
    return;
  }
  const auto sequences = [](int64_t n) { return fmt::format("{} sequence{}", n, n == 1 ? "" : "s"); };
  fmt::print("train {} ({} tokens, {}), test {} ({} tokens, {}){}\n", o.train, train.tokens.size(),
             sequences(placement::count_sequences(train)), o.test, test.tokens.size(),
             sequences(placement::count_sequences(test)), o.in_sample ? ": the same trace, in-sample figures" : "");
  fmt::print("{} layers x {} experts; {} expert{} guessed per token and layer; precision / recall\n", test.model.num_layers, E,
             count, count == 1 ? "" : "s");
  fmt::print("{:<12}", "predictor");
  for (size_t d = 0; d < scores.front().ahead.size(); ++d) fmt::print("  {:>17}", fmt::format("{} ahead", d + 1));
  fmt::print("\n");
  for (const auto& s : scores) {
    fmt::print("{:<12}", s.name);
    for (const auto& a : s.ahead) {
      if (!s.available) {
        fmt::print("  {:>17}", "not recorded");
        continue;
      }
      fmt::print("  {:>17}", fmt::format("{:.1f}% / {:.1f}%", 100 * a.precision(), 100 * a.recall()));
    }
    fmt::print("\n");
  }
  for (const auto& s : scores)
    if (!s.learnt.empty()) fmt::print("{}: {}\n", s.name, s.learnt);
  fmt::print("random: the expectation of a uniform guess; popularity: the training trace's most used experts of the layer;\n"
             "stats: transitions from this layer; history: transitions from this and the previous layer, the sequence's own\n"
             "recent experts and its best-matching training windows; gate: the test trace's recorded guesses (moe profile).\n");
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--train", o->train, "trace the statistical predictors learn from (a trace file or an importable one)")
      ->required()->check(CLI::ExistingFile);
  app.add_option("--test", o->test, "trace they are judged on (its recorded gate guesses, if any, are judged too)")
      ->required()->check(CLI::ExistingFile);
  app.add_option("-k,--guesses", o->eval.count, "experts guessed per token and layer (default: the test trace's mean experts per token and layer, top-k for top-k routing)")
      ->check(whole_number(1, 1 << 20));
  app.add_option("--ahead", o->eval.max_ahead, "layers ahead to judge, 1 to 3")->capture_default_str()->check(whole_number(1, 3));
  app.add_flag("--in-sample", o->in_sample, "allow --train and --test to be the same trace (in-sample figures)");
  app.add_flag("--json", o->json, "print one JSON document");
  app.callback([o] { run(*o); });
}

const CommandRegistration kPredictEval("predict", "eval",
                                       "Precision and recall of the routing predictors, trained on one trace and tested on another",
                                       setup);

}  // namespace
}  // namespace moe::tools
