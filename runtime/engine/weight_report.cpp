#include "runtime/engine/weight_report.h"

#include <fmt/format.h>

namespace moe::engine {

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
  return fmt::format("[against the checkpoint's weights in the exact mode over {} positions: top-1 agreement {:.1f}%, KL {:.3g} nats/token, "
                     "max |logit diff| {:.3g}]\n",
                     a.positions, 100 * a.top1_agreement(), a.mean_kl(), a.max_abs_diff);
}

}  // namespace moe::engine
