#include "runtime/model/model_loader.h"

#include "runtime/core/error.h"
#include "runtime/loading/checkpoint_source.h"

namespace moe::model {

LoadedModel load_model(const loading::ModelConfig& config, std::shared_ptr<const loading::WeightSource> source,
                       const LoadOptions& options) {
  LoadedModel model;
  model.config = config;
  model.source = std::move(source);
  model.transformer = std::make_unique<Transformer>(config, load_weights(config, *model.source, options));
  return model;
}

LoadedModel load_model(const std::filesystem::path& dir, const LoadOptions& options) {
  MOE_CHECK(std::filesystem::is_directory(dir), ErrorCode::kNotFound, "{} is not a model folder", dir.string());
  const loading::ModelConfig config = loading::load_model_config(dir);
  auto source = std::make_shared<loading::CheckpointSource>(loading::Checkpoint::open(dir));
  LoadedModel model = load_model(config, std::move(source), options);
  model.path = dir;
  return model;
}

}  // namespace moe::model
