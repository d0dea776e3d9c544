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

nlohmann::json quantization_json(const model::QuantizationReport& report) {
  if (report.empty()) return nullptr;
  nlohmann::json parts = nlohmann::json::array();
  for (const model::QuantizedPart& p : report.parts)
    parts.push_back({{"part", p.part}, {"format", p.format}, {"origin", p.origin}, {"matrices", p.matrices},
                     {"bytes_before", p.bytes_before}, {"bytes_after", p.bytes_after}, {"rms_rel_error", p.rms_rel_error},
                     {"max_rel_error", p.max_rel_error}});
  return {{"format", report.parts.front().format}, {"parts", parts}};
}

nlohmann::json agreement_json(const model::LogitAgreement& a) {
  nlohmann::json j = {{"positions", a.positions}, {"top1_agreement", a.top1_agreement()}, {"mean_kl_nats", a.mean_kl()},
                      {"max_abs_logit_diff", a.max_abs_diff}};
  if (a.scored > 0) {
    j["perplexity"] = a.perplexity();
    j["reference_perplexity"] = a.reference_perplexity();
  }
  return j;
}

std::string agreement_text(const model::LogitAgreement& a) {
  return fmt::format("[against the checkpoint's weights over {} positions: top-1 agreement {:.1f}%, KL {:.3g} nats/token, "
                     "max |logit diff| {:.3g}]\n",
                     a.positions, 100 * a.top1_agreement(), a.mean_kl(), a.max_abs_diff);
}

}  // namespace moe::tools
