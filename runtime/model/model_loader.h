#pragma once
// Opens a model for running: its config, weights (viewed in place) and the transformer over
// them. Tokenizers are loaded by the caller (runtime/tokenizer), so this stays free of them.
#include <filesystem>
#include <memory>

#include "runtime/loading/model_config.h"
#include "runtime/loading/weight_source.h"
#include "runtime/model/transformer.h"

namespace moe::model {

struct LoadedModel {
  std::filesystem::path path;
  loading::ModelConfig config;
  std::shared_ptr<const loading::WeightSource> source;  // keeps mapped weights alive
  std::unique_ptr<Transformer> transformer;
};

// `dir` is a Hugging Face folder (config.json + safetensors).
LoadedModel load_model(const std::filesystem::path& dir, const LoadOptions& options = {});

// Builds the transformer over an already opened weight source (an expert store, a test's
// in-memory source).
LoadedModel load_model(const loading::ModelConfig& config, std::shared_ptr<const loading::WeightSource> source,
                       const LoadOptions& options = {});

}  // namespace moe::model
