#pragma once
// `--weights` and `--quantize`, shared by `moe run`, `moe eval`, `moe profile` and `moe bench
// decode`: the format the model lives in (runtime/model/weight_format.h), and how its error
// against the checkpoint is reported.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>

#include "runtime/model/logit_comparison.h"
#include "runtime/model/model_loader.h"

namespace moe::tools {

struct WeightFlags {
  std::string weights;              // "" (as stored), int8, int4, int8:G, int4:G
  std::string quantize = "experts";  // comma list of experts, dense, lm-head, all
  // Throws moe::Error(kInvalidArgument) naming a bad value.
  model::LoadOptions load_options() const;
};

void add_weight_options(CLI::App& app, WeightFlags& flags);

// {"format", "parts": [{part, format, origin, matrices, bytes_before, bytes_after, rms_rel_error,
// max_rel_error}]}; null when nothing was converted.
nlohmann::json quantization_json(const model::QuantizationReport& report);
nlohmann::json agreement_json(const model::LogitAgreement& agreement);
// "[against the checkpoint's weights over N positions: top-1 agreement 97.0%, KL 0.0012 nats, max |logit diff| 0.21]"
std::string agreement_text(const model::LogitAgreement& agreement);

}  // namespace moe::tools
