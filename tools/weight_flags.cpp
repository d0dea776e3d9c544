#include "tools/weight_flags.h"

#include <fmt/format.h>

#include "runtime/core/error.h"

namespace moe::tools {

cpu::Activations parse_activations(const std::string& value) {
  MOE_CHECK(value == "exact" || value == "int8" || value == "bf16", ErrorCode::kInvalidArgument,
            "--activations must be exact, int8 or bf16, not '{}'", value);
  if (value == "exact") return cpu::Activations::kExact;
  if (value == "bf16") {
    MOE_CHECK(cpu::cpu_has_bf16_dot(), ErrorCode::kUnsupported,
              "--activations bf16 needs a CPU with AVX512-BF16, which this one lacks");
    return cpu::Activations::kBf16;
  }
  MOE_CHECK(cpu::cpu_has_int8_dot(), ErrorCode::kUnsupported,
            "--activations int8 needs a CPU with AVX512-VNNI, which this one lacks");
  return cpu::Activations::kInt8;
}

void add_activations_option(CLI::App& app, std::string& value) {
  app.add_option("--activations", value,
                 "how weights meet the activations: exact (widened to f32, the default); int8 (lossy, for int8/int4 "
                 "weights in groups of a multiple of 32: llama.cpp's Q8 dot products, each token's activations quantised "
                 "to int8 per 32 columns, integer dot products; needs AVX512-VNNI); bf16 (lossy, for bf16 weights: each "
                 "token's activations rounded to bf16, two products a lane and instruction; needs AVX512-BF16). Both "
                 "lossy modes are batch-invariant")
      ->capture_default_str();
}

model::LoadOptions WeightFlags::load_options() const {
  cpu::set_activations(parse_activations(activations));
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
  add_activations_option(app, f.activations);
}

}  // namespace moe::tools
