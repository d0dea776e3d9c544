#include "runtime/model/generator.h"

#include <algorithm>
#include <chrono>

#include "runtime/core/error.h"
#include "runtime/core/memory_usage.h"

namespace moe::model {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Generation generate(Transformer& model, std::span<const int32_t> prompt, const GenerationOptions& options,
                    const TokenCallback& on_token) {
  MOE_CHECK(!prompt.empty(), ErrorCode::kInvalidArgument, "the prompt encodes to no tokens");
  MOE_CHECK(options.max_new_tokens >= 0, ErrorCode::kInvalidArgument, "the number of new tokens cannot be negative");
  const int64_t capacity = int64_t(prompt.size()) + std::max(options.max_new_tokens, 1);
  MOE_CHECK(capacity <= model.max_positions(), ErrorCode::kInvalidArgument,
            "{} prompt tokens and {} new ones pass the model's context of {} positions", prompt.size(), options.max_new_tokens,
            model.max_positions());
  KvCache cache = model.make_cache(capacity);
  Sampler sampler(options.sampling);
  Generation result;
  result.stats.prompt_tokens = int64_t(prompt.size());
  result.stop_reason = "length";

  auto start = std::chrono::steady_clock::now();
  std::vector<float> logits = model.forward(prompt, cache);
  result.stats.prefill_seconds = seconds_since(start);

  start = std::chrono::steady_clock::now();
  for (int i = 0; i < options.max_new_tokens; ++i) {
    if (i > 0) {
      const int32_t previous = result.tokens.back();
      logits = model.forward(std::span(&previous, 1), cache);
    }
    if (options.on_logits) options.on_logits(logits);
    int32_t token = sampler.sample(logits);
    if (options.agree_token) token = options.agree_token(token);
    result.tokens.push_back(token);
    const bool keep_going = !on_token || on_token(token);
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) != options.stop_tokens.end()) {
      result.stop_reason = "stop_token";
      break;
    }
    if (!keep_going) {
      result.stop_reason = "callback";
      break;
    }
  }
  result.stats.decode_seconds = seconds_since(start);
  result.stats.generated_tokens = int64_t(result.tokens.size());
  result.stats.peak_resident_bytes = peak_resident_bytes();
  result.last_logits = std::move(logits);
  return result;
}

}  // namespace moe::model
