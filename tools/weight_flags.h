#pragma once
// `--weights` and `--quantize`, shared by `moe run`, `moe eval`, `moe profile` and `moe bench
// decode`: the format the model lives in (runtime/model/weight_format.h), and how its error
// against the checkpoint is reported.
#include <CLI/CLI.hpp>

#include <string>

#include "runtime/model/model_loader.h"

namespace moe::tools {

struct WeightFlags {
  std::string weights;              // "" (as stored), int8, int4, int8:G, int4:G
  std::string quantize = "experts";  // comma list of experts, dense, lm-head, all
  // Throws moe::Error(kInvalidArgument) naming a bad value.
  model::LoadOptions load_options() const;
};

void add_weight_options(CLI::App& app, WeightFlags& flags);

}  // namespace moe::tools
