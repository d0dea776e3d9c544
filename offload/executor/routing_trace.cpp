#include "offload/executor/routing_trace.h"

#include <algorithm>

#include "offload/executor/predictor.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

int first_moe_layer(const loading::ModelConfig& c) {
  const std::vector<int> layers = c.moe_layers();
  return layers.empty() ? -1 : layers.front();
}

}  // namespace

TraceRecorder::TraceRecorder(const std::filesystem::path& path, const loading::ModelConfig& config,
                             const std::string& model_name, const std::string& source)
    : config_(&config) {
  first_sparse_ = first_moe_layer(config);
  writer_ = std::make_unique<placement::TraceWriter>(
      path, placement::ModelIdentity{model_name, config.num_sparse_layers(), config.num_experts, config.num_experts_per_tok},
      source);
}

model::RoutingHook TraceRecorder::hook() {
  return [this](int layer, std::span<const int64_t> positions, model::RoutingDecision& d) {
    if (layer == first_sparse_) {
      flush();
      for (int64_t p : positions) pending_.push_back({sequence_, p, {}});
    }
    MOE_CHECK(int64_t(pending_.size()) == d.num_tokens(), ErrorCode::kInternal, "trace recorder lost track of tokens");
    for (int64_t t = 0; t < d.num_tokens(); ++t) {
      const auto e = d.experts_of(t);
      const auto w = d.weights_of(t);
      pending_[size_t(t)].layers.push_back({config_->moe_layer_index(layer), {e.begin(), e.end()}, {w.begin(), w.end()}});
    }
  };
}

void TraceRecorder::add_guesses(int64_t token, std::vector<placement::GateGuess> guesses) {
  MOE_CHECK(token >= 0 && token < int64_t(pending_.size()) && !pending_[size_t(token)].layers.empty(), ErrorCode::kInternal,
            "gate guesses for token {} of a step of {}", token, pending_.size());
  pending_[size_t(token)].layers.back().guesses = std::move(guesses);
}

GateGuessRecorder::GateGuessRecorder(const model::Transformer& transformer, model::ExpertRunner& inner,
                                     TraceRecorder& recorder, int depth, int count)
    : transformer_(transformer), inner_(inner), recorder_(recorder), depth_(depth), count_(count) {}

void gate_guesses_ahead(const model::Transformer& transformer, int layer, const float* x, int64_t m, int depth, int count,
                        std::vector<std::vector<placement::GateGuess>>& out) {
  const std::vector<int> sparse = transformer.config().moe_layers();
  const auto at = std::find(sparse.begin(), sparse.end(), layer);
  out.assign(size_t(m), {});
  std::vector<std::vector<int32_t>> ranked;
  for (int ahead = 1; ahead <= depth && at != sparse.end() && at + ahead < sparse.end(); ++ahead) {
    gate_guesses(transformer, *(at + ahead), x, m, count, ranked);
    for (int64_t t = 0; t < m; ++t) out[size_t(t)].push_back({ahead, std::move(ranked[size_t(t)])});
  }
}

void GateGuessRecorder::run(int layer, const float* x, int64_t hidden, const model::RoutingDecision& routing, float* out) {
  const int64_t m = routing.num_tokens();
  gate_guesses_ahead(transformer_, layer, x, m, depth_, count_, guesses_);
  for (int64_t t = 0; t < m; ++t) recorder_.add_guesses(t, std::move(guesses_[size_t(t)]));
  inner_.run(layer, x, hidden, routing, out);
}

void TraceRecorder::flush() {
  for (const auto& t : pending_) writer_->write(t);
  written_ += int64_t(pending_.size());
  pending_.clear();
}

void TraceRecorder::finish() {
  flush();
  writer_->finish();
}

TraceCollector::TraceCollector(const loading::ModelConfig& config, model::RoutingHook previous,
                               const model::Transformer* rows_of)
    : previous_(std::move(previous)), config_(&config), rows_of_(rows_of) {
  first_sparse_ = first_moe_layer(config);
  trace_.model = {"collected", config.num_sparse_layers(), config.num_experts, config.num_experts_per_tok};
}

model::RoutingHook TraceCollector::hook() {
  return [this](int layer, std::span<const int64_t> positions, model::RoutingDecision& d) {
    if (previous_) previous_(layer, positions, d);
    if (layer == first_sparse_) {
      batch_begin_ = trace_.tokens.size();
      const auto rows = rows_of_ ? rows_of_->step_rows() : std::span<const model::StepRow>{};
      if (rows.size() == positions.size()) sequences_.assign(rows, ids_);
      else ids_.assign(positions.size(), 0);
      for (size_t i = 0; i < positions.size(); ++i) trace_.tokens.push_back({ids_[i], positions[i], {}});
    }
    for (int64_t t = 0; t < d.num_tokens(); ++t) {
      const auto e = d.experts_of(t);
      const auto w = d.weights_of(t);
      trace_.tokens[batch_begin_ + size_t(t)].layers.push_back({config_->moe_layer_index(layer), {e.begin(), e.end()}, {w.begin(), w.end()}});
    }
  };
}

void TraceCollector::add_guesses(int64_t token, std::vector<placement::GateGuess> guesses) {
  const size_t i = batch_begin_ + size_t(token);
  MOE_CHECK(token >= 0 && i < trace_.tokens.size() && !trace_.tokens[i].layers.empty(), ErrorCode::kInternal,
            "gate guesses for token {} of a step the collector has not seen", token);
  trace_.tokens[i].layers.back().guesses = std::move(guesses);
}

TraceReplayer::TraceReplayer(placement::Trace trace, const loading::ModelConfig& config)
    : trace_(std::move(trace)), config_(&config) {
  first_sparse_ = first_moe_layer(config);
  MOE_CHECK(trace_.model.num_layers == config.num_sparse_layers() && trace_.model.num_experts == config.num_experts,
            ErrorCode::kInvalidArgument, "the trace has {} MoE layers x {} experts, the model {} x {}", trace_.model.num_layers,
            trace_.model.num_experts, config.num_sparse_layers(), config.num_experts);
  MOE_CHECK(!trace_.tokens.empty(), ErrorCode::kInvalidArgument, "the trace to replay holds no tokens");
  top_k_ = config.num_experts_per_tok;
}

model::RoutingHook TraceReplayer::hook() {
  return [this](int layer, std::span<const int64_t> positions, model::RoutingDecision& d) {
    if (layer == first_sparse_) {
      // Past the end there is no routing to force: wrapping around replayed other tokens' and
      // called it the trace.
      const int64_t needed = cursor_ + int64_t(positions.size());
      MOE_CHECK(needed <= int64_t(trace_.tokens.size()), ErrorCode::kInvalidArgument,
                "the trace to replay holds the routing of {} tokens, the run needs {} or more", trace_.tokens.size(),
                needed);
      batch_begin_ = cursor_;
      cursor_ = needed;
    }
    const int sparse = config_->moe_layer_index(layer);
    model::RoutingDecision forced;
    for (int64_t t = 0; t < d.num_tokens(); ++t) {
      const auto& record = trace_.tokens[size_t(batch_begin_ + t)];
      const placement::LayerRouting* choice = nullptr;
      for (const auto& l : record.layers)
        if (l.layer == sparse) choice = &l;
      if (!choice) {  // a gap in the trace: the model's own choice stands
        const auto e = d.experts_of(t);
        const auto w = d.weights_of(t);
        forced.add_token({e.begin(), e.end()}, {w.begin(), w.end()});
        continue;
      }
      std::vector<float> weights = choice->weights;
      if (weights.empty()) weights.assign(choice->experts.size(), 1.0f / float(choice->experts.size()));
      forced.add_token(choice->experts, weights);
    }
    d = std::move(forced);
  };
}

}  // namespace moe::offload
