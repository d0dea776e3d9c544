// The trained tiny models of docs/RESULTS.md (models/, the embedded default among them) against
// PyTorch: the perplexity the engine computes on held-out snippets of every domain equals the
// one PyTorch computes from the same exported files (tools/train/train.py fixtures, written to
// tests/fixtures/trained/). This checks the export, the tokenizer and every family's forward pass
// on trained weights, whose routing is far from the uniform routing of random fixtures.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runtime/core/read_file.h"
#include "runtime/model/default_model.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/perplexity.h"
#include "runtime/model/routing.h"
#include "runtime/tokenizer/tokenizer.h"

namespace moe {
namespace {

const std::filesystem::path kRoot(MOE_SOURCE_DIR);

TEST(TrainedModels, EnginePerplexityEqualsPyTorchOnEveryDomain) {
  const nlohmann::json expected = nlohmann::json::parse(read_file(kRoot / "tests" / "fixtures" / "trained" / "perplexity.json"));
  const int window = expected.at("window").get<int>();
  int checked = 0;
  for (const auto& [name, routings] : expected.at("models").items()) {
    model::LoadedModel m = model::load_model(kRoot / "models" / name);
    const auto tokenizer = tokenizer::load_tokenizer(m.files_dir);
    for (const auto& [routing, domains] : routings.items()) {
      m.transformer->set_routing_mode(model::parse_routing_mode(routing));
      for (const auto& [domain, want] : domains.items()) {
        const std::string text = read_file(kRoot / "tests" / "fixtures" / "trained" / (domain + ".txt"));
        const model::Perplexity got = model::evaluate_perplexity(*m.transformer, tokenizer->encode(text), window);
        EXPECT_NEAR(got.value() / want.get<double>(), 1.0, 1e-4) << name << " " << routing << " " << domain;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 5 * 8);
}

TEST(TrainedModels, TheEmbeddedDefaultIsTheTrainedDsMoe) {
  const auto files = [](const std::filesystem::path& dir) {
    return read_file(dir / "config.json") + read_file(dir / "model.safetensors") + read_file(dir / "tokenizer.json");
  };
  EXPECT_TRUE(files(model::default_model_dir()) == files(kRoot / "models" / "ds-moe-tiny"));
}

}  // namespace
}  // namespace moe
