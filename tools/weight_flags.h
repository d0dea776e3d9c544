#pragma once
// `--weights` and `--quantize`, shared by `moe run`, `moe eval`, `moe profile` and `moe bench
// decode`: the format the model lives in (runtime/model/weight_format.h), and how its error
// against the checkpoint is reported.
#include <CLI/CLI.hpp>

#include <string>

#include "kernels/cpu/matmul.h"
#include "runtime/model/model_loader.h"

namespace moe::tools {

struct WeightFlags {
  std::string weights;              // "" (as stored), int8, int4, int8:G, int4:G
  std::string quantize = "experts";  // comma list of experts, dense, lm-head, all
  std::string activations = "exact";  // exact, int8, bf16 (kernels/cpu/matmul.h's lossy modes)
  // The load's options; also switches the CPU kernels to the --activations mode (process-wide,
  // as the instruction set is). Throws moe::Error(kInvalidArgument) naming a bad value.
  model::LoadOptions load_options() const;
};

void add_weight_options(CLI::App& app, WeightFlags& flags);

// --activations exact|int8|bf16, for the commands that multiply (here and `moe bench kernels`).
void add_activations_option(CLI::App& app, std::string& value);
// Throws moe::Error(kInvalidArgument) for a value that is not a mode, kUnsupported for int8 on a
// CPU without AVX512-VNNI or bf16 without AVX512-BF16 (their portable paths are references, far
// too slow to run a model).
cpu::Activations parse_activations(const std::string& value);

}  // namespace moe::tools
