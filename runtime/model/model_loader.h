#pragma once
// Opens a model for running: its config, weights (viewed in place) and the transformer over
// them. Tokenizers are loaded by the caller (runtime/tokenizer), so this stays free of them.
#include <filesystem>
#include <memory>

#include "runtime/loading/model_config.h"
#include "runtime/loading/weight_source.h"
#include "runtime/model/quantize_weights.h"
#include "runtime/model/transformer.h"

namespace moe::model {

struct LoadedModel {
  std::filesystem::path path;
  loading::ModelConfig config;
  std::shared_ptr<const loading::WeightSource> source;  // keeps mapped weights alive
  std::unique_ptr<Transformer> transformer;
  // Where config.json and the tokenizer files are: the folder itself, or a scratch folder
  // holding the files embedded in an expert store (kept while the model lives).
  std::filesystem::path files_dir;
  std::shared_ptr<const void> files_keepalive;
  // What LoadOptions::weights converted (empty when the weights are as stored), with its error.
  QuantizationReport quantization;
};

// `path` is a Hugging Face folder (config.json + safetensors) or an expert store (`moe pack`).
// With int8/int4 `options.weights`, the parts asked are converted at load, except routed experts
// of a store holding copies in that format, which are taken from the store (store_copies.h).
LoadedModel load_model(const std::filesystem::path& path, const LoadOptions& options = {});

// Builds the transformer over an already opened weight source (an expert store, a test's
// in-memory source).
LoadedModel load_model(const loading::ModelConfig& config, std::shared_ptr<const loading::WeightSource> source,
                       const LoadOptions& options = {});

}  // namespace moe::model
