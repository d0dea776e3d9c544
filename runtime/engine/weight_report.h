#pragma once
// How int8/int4 weights and their logits against the checkpoint's are reported, as JSON and as
// a line of text.
#include <nlohmann/json.hpp>

#include <string>

#include "runtime/model/logit_comparison.h"
#include "runtime/model/quantize_weights.h"

namespace moe::engine {

// {"format", "parts": [{part, format, origin, matrices, bytes_before, bytes_after, rms_rel_error,
// max_rel_error}]}; null when nothing was converted.
nlohmann::json quantization_json(const model::QuantizationReport& report);
nlohmann::json agreement_json(const model::LogitAgreement& agreement);
// "[against the checkpoint's weights over N positions: top-1 agreement 97.0%, KL 0.0012 nats, max |logit diff| 0.21]"
std::string agreement_text(const model::LogitAgreement& agreement);

}  // namespace moe::engine
