#pragma once
// The engine options as command-line flags, shared by `moe run`, `moe profile`, `moe bench
// decode` and `moe eval`, with --weights and --quantize beside them.
#include <CLI/CLI.hpp>

#include "runtime/engine/engine.h"
#include "tools/weight_flags.h"

namespace moe::tools {

struct OffloadFlags : engine::EngineOptions {
  WeightFlags weights;  // --weights, --quantize: applied when the command loads the model
  // weights.load_options(), refusing a lossy --activations with --backend cuda (its kernels are exact:
  // experts computed on the CPU and on the GPU would differ, and so would budgets).
  model::LoadOptions load_options() const;
};

void add_offload_options(CLI::App& app, OffloadFlags& flags);
// Under mpirun, before any weight is read: every rank takes --rank-timeout and refuses, together,
// a plan whose devices are not ranks x --devices (rank 0 says why, once). Alone: nothing.
void start_ranks(const OffloadFlags& flags);
// --explain: the automatic split's reasons on stderr (the --json document carries them as "placement").
void explain_placement(const engine::Engine& engine, const OffloadFlags& flags, bool json);

}  // namespace moe::tools
