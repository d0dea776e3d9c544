#include "runtime/model/model_loader.h"

#include "runtime/core/error.h"
#include "offload/store/expert_store.h"
#include "offload/store/store_format.h"
#include "runtime/core/scratch_dir.h"
#include "runtime/loading/checkpoint_source.h"
#include "runtime/model/store_copies.h"

namespace moe::model {

LoadedModel load_model(const loading::ModelConfig& config, std::shared_ptr<const loading::WeightSource> source,
                       const LoadOptions& options) {
  LoadedModel model;
  model.config = config;
  model.source = std::move(source);
  ModelWeights weights = load_weights(config, *model.source, options);
  WeightFormat convert = options.weights;
  const auto* store = dynamic_cast<const offload::StoreWeightSource*>(model.source.get());
  if (convert.quantized() && convert.experts && store && options.load_routed_experts)
    if (const std::string copies = store_copy_format(*store->store(), convert); !copies.empty()) {
      model.quantization.parts.push_back(use_store_copies(weights, config, *store->store(), copies));
      convert.experts = false;
    }
  for (QuantizedPart& part : quantize_weights(weights, convert)) model.quantization.parts.push_back(std::move(part));
  model.transformer = std::make_unique<Transformer>(config, std::move(weights));
  return model;
}

LoadedModel load_model(const std::filesystem::path& dir, const LoadOptions& options) {
  if (std::filesystem::is_regular_file(dir) && offload::looks_like_store(dir)) {
    auto store = offload::ExpertStore::open(dir);
    const auto config_text = store->file("config.json");
    MOE_CHECK(config_text.has_value(), ErrorCode::kCorrupt, "{} holds no config.json", dir.string());
    const loading::ModelConfig config = loading::parse_model_config(*config_text, dir.string() + ":config.json");
    auto files = std::make_shared<ScratchDir>("moe-store");
    store->extract_files(files->path());
    LoadedModel model = load_model(config, std::make_shared<offload::StoreWeightSource>(std::move(store)), options);
    model.path = dir;
    model.files_dir = files->path();
    model.files_keepalive = std::move(files);
    return model;
  }
  MOE_CHECK(std::filesystem::is_directory(dir), ErrorCode::kNotFound, "{} is not a model folder or an expert store",
            dir.string());
  const loading::ModelConfig config = loading::load_model_config(dir);
  auto source = std::make_shared<loading::CheckpointSource>(loading::Checkpoint::open(dir));
  LoadedModel model = load_model(config, std::move(source), options);
  model.path = dir;
  model.files_dir = dir;
  return model;
}

}  // namespace moe::model
