#pragma once
// How far a model's logits are from a reference model's over the same tokens: a model with
// int8/int4 weights (--weights), or run with lossy activations (--activations), against the
// checkpoint's in the exact mode. The reference runs each sequence
// teacher-forced in one prefill, so it sees exactly the tokens the model saw (prefill and decode
// give the same bits, so a decoded sequence compares position by position).
#include <cstdint>
#include <span>

#include "runtime/model/transformer.h"

namespace moe::model {

struct LogitAgreement {
  int64_t positions = 0;     // logit rows compared
  int64_t top1_same = 0;     // rows whose argmax is the reference's
  double max_abs_diff = 0;   // max |logit - reference logit| over every row and token
  double kl_sum = 0;         // sum over rows of KL(reference || model), nats
  int64_t scored = 0;        // rows whose next token is known (all but a sequence's last)
  double nll = 0, reference_nll = 0;  // their summed negative log-likelihoods, nats
  double top1_agreement() const { return positions ? double(top1_same) / double(positions) : 0; }
  double mean_kl() const { return positions ? kl_sum / double(positions) : 0; }
  double perplexity() const;
  double reference_perplexity() const;
};

class LogitComparison {
 public:
  // `reference` (not owned) must outlive the comparison.
  explicit LogitComparison(Transformer& reference) : reference_(reference) {}

  // `tokens` as the model ran them from an empty cache; `logits` [tokens.size() - first, vocab]
  // its logits at positions first, first + 1, ... (the last prompt position onwards for a decode).
  void add(std::span<const int32_t> tokens, int64_t first, std::span<const float> logits);
  const LogitAgreement& result() const { return result_; }

 private:
  Transformer& reference_;
  LogitAgreement result_;
};

}  // namespace moe::model
