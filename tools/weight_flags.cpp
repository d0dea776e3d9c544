#include "tools/weight_flags.h"

#include <fmt/format.h>

namespace moe::tools {

model::LoadOptions WeightFlags::load_options() const {
  model::LoadOptions options;
  options.weights = model::parse_weight_format(weights, quantize);
  return options;
}

void add_weight_options(CLI::App& app, WeightFlags& f) {
  app.add_option("--weights", f.weights,
                 fmt::format("keep the weights in int8 or int4 with groups of G columns: int8, int4, int8:G, int4:G (G a "
                             "multiple of 8, default {}); an expert store's copies in that format are used as they are",
                             model::kDefaultGroupSize));
  app.add_option("--quantize", f.quantize,
                 "with --weights, what is converted: a comma list of experts, dense (attention, dense and shared MLPs), "
                 "lm-head, or all; routers, embeddings and norms stay as stored")
      ->capture_default_str();
}

}  // namespace moe::tools
