#include "placement/predict/routing_predictor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "runtime/core/error.h"

namespace moe::placement {
namespace {

constexpr int kMaxAhead = 3;          // distances the statistical predictors learn
constexpr int kWindowTokens = 16;     // tokens per activation window of the matching library
constexpr size_t kMaxEvents = 400000; // EM observations per distance (subsampled beyond)
constexpr float kFastDecay = 0.5f, kSlowDecay = 0.95f;  // per token, of a sequence's recent activations

enum Component { kPopularity, kTransition, kPreviousLayer, kJoint, kJoint2, kRecentFast, kRecentSlow, kMatched, kComponents };

// The layer `layer` of a token's path, or null (a gap, or not reached yet).
const LayerRouting* find_layer(std::span<const LayerRouting> path, int layer) {
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    if (it->layer == layer) return &*it;
    if (it->layer < layer) break;
  }
  return nullptr;
}

std::string joint_key(int layer, int ahead, const std::vector<int32_t>& experts) {
  std::vector<int32_t> sorted = experts;
  std::sort(sorted.begin(), sorted.end());
  std::string key(reinterpret_cast<const char*>(&layer), sizeof layer);
  key.append(reinterpret_cast<const char*>(&ahead), sizeof ahead);
  key.append(reinterpret_cast<const char*>(sorted.data()), sorted.size() * sizeof(int32_t));
  return key;
}

// The joint choices of two consecutive layers (the earlier one first).
std::string joint2_key(int layer, int ahead, const std::vector<int32_t>& previous, const std::vector<int32_t>& experts) {
  std::string key = joint_key(layer, ahead, experts);
  const int32_t n = int32_t(experts.size());
  key.insert(0, reinterpret_cast<const char*>(&n), sizeof n);
  std::vector<int32_t> sorted = previous;
  std::sort(sorted.begin(), sorted.end());
  key.append(reinterpret_cast<const char*>(sorted.data()), sorted.size() * sizeof(int32_t));
  return key;
}

// Counts learnt from a set of tokens.
struct Counts {
  int L = 0, E = 0;
  std::vector<double> popularity;                    // [L][E]
  std::vector<std::vector<float>> transitions;       // per distance d = 1..kMaxAhead + 1: [L][E][E]
  std::unordered_map<std::string, std::vector<float>> joint;  // (layer, ahead, sorted experts) -> [E]
  std::unordered_map<std::string, std::vector<float>> joint2;  // the same with the layer before's choice
  std::vector<std::vector<float>> windows;           // activation windows, each layer's row summing to 1: [L*E]
  std::vector<float> window_norms;

  Counts(int layers, int experts) : L(layers), E(experts) {
    popularity.assign(size_t(L) * size_t(E), 0.0);
    transitions.assign(kMaxAhead + 1, std::vector<float>(size_t(L) * size_t(E) * size_t(E), 0.0f));
  }

  void add(const std::vector<const TokenRecord*>& tokens) {
    std::vector<const LayerRouting*> at(static_cast<size_t>(L));
    for (const TokenRecord* t : tokens) {
      std::fill(at.begin(), at.end(), nullptr);
      for (const LayerRouting& l : t->layers) at[size_t(l.layer)] = &l;
      for (int l = 0; l < L; ++l) {
        if (!at[size_t(l)]) continue;
        for (int32_t e : at[size_t(l)]->experts) popularity[size_t(l) * size_t(E) + size_t(e)] += 1;
        for (int d = 1; d <= kMaxAhead + 1 && l + d < L; ++d) {
          const LayerRouting* to = at[size_t(l + d)];
          if (!to) continue;
          auto& tr = transitions[size_t(d - 1)];
          for (int32_t e : at[size_t(l)]->experts)
            for (int32_t f : to->experts) tr[(size_t(l) * size_t(E) + size_t(e)) * size_t(E) + size_t(f)] += 1;
          if (d <= kMaxAhead) {
            auto& row = joint[joint_key(l, d, at[size_t(l)]->experts)];
            row.resize(size_t(E), 0.0f);
            for (int32_t f : to->experts) row[size_t(f)] += 1;
            if (l > 0 && at[size_t(l - 1)]) {
              auto& row2 = joint2[joint2_key(l, d, at[size_t(l - 1)]->experts, at[size_t(l)]->experts)];
              row2.resize(size_t(E), 0.0f);
              for (int32_t f : to->experts) row2[size_t(f)] += 1;
            }
          }
        }
      }
    }
  }

  // Windows of kWindowTokens consecutive tokens of each sequence (half overlapping), at most
  // as many as keep one match cheap.
  void add_windows(const std::vector<std::vector<const TokenRecord*>>& sequences) {
    const size_t cells = size_t(L) * size_t(E);
    const size_t budget = std::max<size_t>(16, std::min<size_t>(4096, size_t(20'000'000) / cells));
    size_t total = 0;
    for (const auto& s : sequences) total += s.size() / (kWindowTokens / 2) + 1;
    const size_t stride = std::max<size_t>(kWindowTokens / 2, (total * (kWindowTokens / 2)) / budget + 1);
    for (const auto& s : sequences)
      for (size_t begin = 0; begin < s.size(); begin += stride) {
        std::vector<float> w(cells, 0.0f);
        for (size_t i = begin; i < std::min(s.size(), begin + kWindowTokens); ++i)
          for (const LayerRouting& l : s[i]->layers)
            for (int32_t e : l.experts) w[size_t(l.layer) * size_t(E) + size_t(e)] += 1;
        normalize_rows(w);
        window_norms.push_back(norm(w));
        windows.push_back(std::move(w));
        if (begin + kWindowTokens >= s.size()) break;
      }
  }

  void normalize_rows(std::vector<float>& w) const {
    for (int l = 0; l < L; ++l) {
      float sum = 0;
      for (int e = 0; e < E; ++e) sum += w[size_t(l) * size_t(E) + size_t(e)];
      if (sum > 0)
        for (int e = 0; e < E; ++e) w[size_t(l) * size_t(E) + size_t(e)] /= sum;
    }
  }
  static float norm(const std::vector<float>& w) {
    double s = 0;
    for (float v : w) s += double(v) * v;
    return float(std::sqrt(s));
  }

  // P(expert at layer m), smoothed.
  void popularity_of(int m, float* out) const {
    double sum = 0;
    for (int f = 0; f < E; ++f) sum += popularity[size_t(m) * size_t(E) + size_t(f)];
    for (int f = 0; f < E; ++f) out[f] = float((popularity[size_t(m) * size_t(E) + size_t(f)] + 1.0) / (sum + E));
  }
  // The mean over the token's experts at `from` of P(f at from + d | e at from), smoothed.
  bool transition_of(const LayerRouting* from, int d, float* out) const {
    if (!from || from->experts.empty() || d < 1 || d > kMaxAhead + 1) return false;
    const auto& tr = transitions[size_t(d - 1)];
    std::fill(out, out + E, 0.0f);
    for (int32_t e : from->experts) {
      const float* row = tr.data() + (size_t(from->layer) * size_t(E) + size_t(e)) * size_t(E);
      double sum = 0;
      for (int f = 0; f < E; ++f) sum += row[f];
      for (int f = 0; f < E; ++f) out[f] += float((row[f] + 0.5) / (sum + 0.5 * E) / double(from->experts.size()));
    }
    return true;
  }
  // The joint choice's own counts, shrunk towards `prior` (two observations' worth).
  bool joint_of(const LayerRouting* from, int d, const float* prior, float* out, const LayerRouting* previous = nullptr) const {
    if (!from || from->experts.empty()) return false;
    const auto& map = previous ? joint2 : joint;
    const auto it = map.find(previous ? joint2_key(from->layer, d, previous->experts, from->experts)
                                      : joint_key(from->layer, d, from->experts));
    if (it == map.end()) return false;
    double sum = 0;
    for (float v : it->second) sum += v;
    for (int f = 0; f < E; ++f) out[f] = float((it->second[size_t(f)] + 2.0 * prior[f]) / (sum + 2.0));
    return true;
  }
};

// A sequence's routing so far.
struct SequenceState {
  std::vector<float> fast, slow;  // decayed activation counts [L*E]
  int64_t tokens = 0;
  std::vector<float> matched;     // the library's best windows for the next token [L*E]
  bool matched_valid = false;
};

class StatisticalPredictor final : public RoutingPredictor {
 public:
  // mode: popularity, stats or history.
  StatisticalPredictor(std::string mode, const Trace& train) : mode_(std::move(mode)), model_(train.model) {
    L_ = train.model.num_layers;
    E_ = train.model.num_experts;
    std::vector<const TokenRecord*> all;
    std::map<int64_t, size_t> order;  // sequence id -> index in `sequences`
    std::vector<std::vector<const TokenRecord*>> sequences;
    for (const TokenRecord& t : train.tokens) {
      all.push_back(&t);
      const auto it = order.emplace(t.sequence_id, sequences.size()).first;
      if (it->second == sequences.size()) sequences.emplace_back();
      sequences[it->second].push_back(&t);
    }
    counts_ = std::make_unique<Counts>(L_, E_);
    counts_->add(all);
    if (mode_ == "history") counts_->add_windows(sequences);
    for (auto& w : weights_) w.fill(0.0);
    for (auto& w : weights_) w[mode_ == "popularity" ? kPopularity : kTransition] = 1.0;
    if (mode_ == "history") fit(train, sequences);
  }

  std::string name() const override { return mode_; }

  void reset() override { states_.clear(); }
  void forget(int64_t sequence) override { states_.erase(sequence); }

  void observe(int64_t sequence, const TokenRecord& token) override {
    if (mode_ != "history") return;
    observe_into(state(sequence), token);
  }

  void predict(int64_t sequence, std::span<const LayerRouting> path, int layer, int ahead, int count,
               std::vector<int32_t>& out) override {
    out.clear();
    if (ahead < 1 || ahead > kMaxAhead || layer + ahead >= L_ || count <= 0) return;
    std::array<std::vector<float>, kComponents> c;
    components(*counts_, mode_ == "history" ? &state(sequence) : nullptr, path, layer, ahead, c);
    std::vector<std::pair<float, int32_t>> score(static_cast<size_t>(E_));
    for (int f = 0; f < E_; ++f) {
      double p = 0;
      for (int i = 0; i < kComponents; ++i)
        if (weights_[size_t(ahead - 1)][size_t(i)] > 0) p += weights_[size_t(ahead - 1)][size_t(i)] * c[size_t(i)][size_t(f)];
      score[size_t(f)] = {float(p), f};
    }
    std::stable_sort(score.begin(), score.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (int i = 0; i < std::min(count, E_); ++i) out.push_back(score[size_t(i)].second);
  }

  std::string describe() const override {
    if (mode_ != "history") return {};
    static constexpr const char* kNames[kComponents] = {"popularity", "transition",     "previous layer", "joint",
                                                        "joint of two layers", "recent (fast)", "recent (slow)",
                                                        "matched windows"};
    std::string out = "mixture weights";
    for (int d = 0; d < kMaxAhead; ++d) {
      out += fmt::format("{} {} ahead:", d ? ";" : "", d + 1);
      for (int i = 0; i < kComponents; ++i) out += fmt::format(" {} {:.2f}{}", kNames[i], weights_[size_t(d)][size_t(i)], i + 1 < kComponents ? "," : "");
    }
    return out;
  }

 private:
  SequenceState& state(int64_t sequence) {
    auto& s = states_[sequence];
    if (s.fast.empty()) {
      s.fast.assign(size_t(L_) * size_t(E_), 0.0f);
      s.slow = s.fast;
    }
    return s;
  }

  void observe_into(SequenceState& s, const TokenRecord& token) const {
    for (float& v : s.fast) v *= kFastDecay;
    for (float& v : s.slow) v *= kSlowDecay;
    for (const LayerRouting& l : token.layers)
      for (int32_t e : l.experts) {
        s.fast[size_t(l.layer) * size_t(E_) + size_t(e)] += 1;
        s.slow[size_t(l.layer) * size_t(E_) + size_t(e)] += 1;
      }
    ++s.tokens;
    s.matched_valid = false;
  }

  // The library windows most like the sequence so far (cosine of per-layer distributions), the
  // best three averaged by similarity.
  void match(const Counts& counts, SequenceState& s) const {
    s.matched_valid = true;
    s.matched.clear();
    if (s.tokens == 0 || counts.windows.empty()) return;
    std::vector<float> q = s.slow;
    counts.normalize_rows(q);
    const float qn = Counts::norm(q);
    if (qn <= 0) return;
    std::vector<std::pair<float, size_t>> sim;
    sim.reserve(counts.windows.size());
    for (size_t w = 0; w < counts.windows.size(); ++w) {
      double dot = 0;
      const auto& v = counts.windows[w];
      for (size_t i = 0; i < q.size(); ++i) dot += double(q[i]) * v[i];
      sim.push_back({float(dot / (double(qn) * counts.window_norms[w] + 1e-12)), w});
    }
    const size_t best = std::min<size_t>(3, sim.size());
    std::partial_sort(sim.begin(), sim.begin() + std::ptrdiff_t(best), sim.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    s.matched.assign(q.size(), 0.0f);
    double total = 0;
    for (size_t i = 0; i < best; ++i) {
      const float weight = std::max(sim[i].first, 1e-6f);
      total += weight;
      const auto& v = counts.windows[sim[i].second];
      for (size_t j = 0; j < v.size(); ++j) s.matched[j] += weight * v[j];
    }
    for (float& v : s.matched) v = float(v / total);
  }

  // Every component's distribution over the experts of layer + ahead.
  void components(const Counts& counts, SequenceState* s, std::span<const LayerRouting> path, int layer, int ahead,
                  std::array<std::vector<float>, kComponents>& c) const {
    const int m = layer + ahead;
    for (auto& v : c) v.resize(size_t(E_));
    counts.popularity_of(m, c[kPopularity].data());
    const LayerRouting* here = find_layer(path, layer);
    if (!counts.transition_of(here, ahead, c[kTransition].data())) c[kTransition] = c[kPopularity];
    if (!counts.transition_of(find_layer(path, layer - 1), ahead + 1, c[kPreviousLayer].data()))
      c[kPreviousLayer] = c[kTransition];
    if (!counts.joint_of(here, ahead, c[kTransition].data(), c[kJoint].data())) c[kJoint] = c[kTransition];
    const LayerRouting* before = find_layer(path, layer - 1);
    if (!before || !counts.joint_of(here, ahead, c[kJoint].data(), c[kJoint2].data(), before)) c[kJoint2] = c[kJoint];
    if (!s) return;
    const auto recent = [&](const std::vector<float>& h, std::vector<float>& out) {
      double sum = 0;
      for (int f = 0; f < E_; ++f) sum += h[size_t(m) * size_t(E_) + size_t(f)];
      for (int f = 0; f < E_; ++f)
        out[size_t(f)] = float((h[size_t(m) * size_t(E_) + size_t(f)] + 0.2 * c[kPopularity][size_t(f)]) / (sum + 0.2));
    };
    recent(s->fast, c[kRecentFast]);
    recent(s->slow, c[kRecentSlow]);
    if (!s->matched_valid) match(counts, *s);
    if (s->matched.empty()) {
      c[kMatched] = c[kPopularity];
    } else {
      for (int f = 0; f < E_; ++f)
        c[kMatched][size_t(f)] = 0.9f * s->matched[size_t(m) * size_t(E_) + size_t(f)] + 0.1f * c[kPopularity][size_t(f)];
    }
  }

  // Mixture weights by EM, per distance, on the training trace: the counts of one half score the
  // other half's tokens (two folds: alternate sequences, or the two halves of a lone sequence),
  // so a component is weighed by how it does out of sample.
  void fit(const Trace& train, const std::vector<std::vector<const TokenRecord*>>& sequences) {
    std::array<std::vector<const TokenRecord*>, 2> fold_tokens;
    std::array<std::vector<std::vector<const TokenRecord*>>, 2> fold_sequences;
    if (sequences.size() >= 2) {
      for (size_t i = 0; i < sequences.size(); ++i) {
        fold_sequences[i % 2].push_back(sequences[i]);
        fold_tokens[i % 2].insert(fold_tokens[i % 2].end(), sequences[i].begin(), sequences[i].end());
      }
    } else {
      const auto& s = sequences.front();
      const auto half = std::ptrdiff_t(s.size() / 2);
      fold_sequences[0].emplace_back(s.begin(), s.begin() + half);
      fold_sequences[1].emplace_back(s.begin() + half, s.end());
      fold_tokens[0] = fold_sequences[0].front();
      fold_tokens[1] = fold_sequences[1].front();
    }
    std::array<std::unique_ptr<Counts>, 2> fold_counts;
    for (int f = 0; f < 2; ++f) {
      fold_counts[size_t(f)] = std::make_unique<Counts>(L_, E_);
      fold_counts[size_t(f)]->add(fold_tokens[size_t(f)]);
      fold_counts[size_t(f)]->add_windows(fold_sequences[size_t(f)]);
    }
    // Observations: each (token, layer, ahead, chosen expert), its components' probabilities.
    std::array<std::vector<std::array<float, kComponents>>, kMaxAhead> events;
    size_t total = 0;
    for (const TokenRecord& t : train.tokens) total += t.layers.size() * kMaxAhead;
    const size_t every = std::max<size_t>(1, total / kMaxEvents + 1);
    size_t seen = 0;
    std::array<std::vector<float>, kComponents> c;
    for (int f = 0; f < 2; ++f) {
      const Counts& other = *fold_counts[size_t(1 - f)];
      for (const auto& seq : fold_sequences[size_t(f)]) {
        SequenceState s;
        s.fast.assign(size_t(L_) * size_t(E_), 0.0f);
        s.slow = s.fast;
        for (const TokenRecord* t : seq) {
          for (size_t i = 0; i < t->layers.size(); ++i) {
            const std::span<const LayerRouting> path(t->layers.data(), i + 1);
            const int layer = t->layers[i].layer;
            for (size_t j = i + 1; j < t->layers.size() && t->layers[j].layer - layer <= kMaxAhead; ++j) {
              if (seen++ % every) continue;
              const int ahead = t->layers[j].layer - layer;
              components(other, &s, path, layer, ahead, c);
              for (int32_t e : t->layers[j].experts) {
                std::array<float, kComponents> p;
                for (int k = 0; k < kComponents; ++k) p[size_t(k)] = c[size_t(k)][size_t(e)];
                events[size_t(ahead - 1)].push_back(p);
              }
            }
          }
          observe_into(s, *t);
        }
      }
    }
    for (int d = 0; d < kMaxAhead; ++d) {
      auto& w = weights_[size_t(d)];
      w.fill(1.0 / double(int(kComponents)));
      if (events[size_t(d)].empty()) continue;
      for (int iteration = 0; iteration < 60; ++iteration) {
        std::array<double, kComponents> next{};
        for (const auto& p : events[size_t(d)]) {
          double mix = 0;
          for (int k = 0; k < kComponents; ++k) mix += w[size_t(k)] * p[size_t(k)];
          for (int k = 0; k < kComponents; ++k) next[size_t(k)] += w[size_t(k)] * p[size_t(k)] / mix;
        }
        for (int k = 0; k < kComponents; ++k) w[size_t(k)] = next[size_t(k)] / double(events[size_t(d)].size());
      }
    }
  }

  std::string mode_;
  ModelIdentity model_;
  int L_ = 0, E_ = 0;
  std::unique_ptr<Counts> counts_;
  std::array<std::array<double, kComponents>, kMaxAhead> weights_{};
  std::map<int64_t, SequenceState> states_;
};

// The gate guesses recorded in the trace being replayed.
class RecordedGatePredictor final : public RoutingPredictor {
 public:
  std::string name() const override { return "gate"; }
  void predict(int64_t, std::span<const LayerRouting> path, int layer, int ahead, int count,
               std::vector<int32_t>& out) override {
    out.clear();
    const LayerRouting* here = find_layer(path, layer);
    if (!here) return;
    for (const GateGuess& g : here->guesses)
      if (g.ahead == ahead) out.assign(g.experts.begin(), g.experts.begin() + std::min<ptrdiff_t>(count, ptrdiff_t(g.experts.size())));
  }
};

}  // namespace

bool predictor_needs_training(const std::string& name) {
  return name == "popularity" || name == "stats" || name == "history";
}

std::unique_ptr<RoutingPredictor> make_routing_predictor(const std::string& name, const Trace& train,
                                                         const ModelIdentity& model) {
  if (name == "gate") return std::make_unique<RecordedGatePredictor>();
  MOE_CHECK(predictor_needs_training(name), ErrorCode::kInvalidArgument,
            "unknown routing predictor '{}' (popularity, stats, history or gate)", name);
  MOE_CHECK(!train.tokens.empty(), ErrorCode::kInvalidArgument, "the {} predictor's training trace holds no tokens", name);
  MOE_CHECK(train.model.num_layers == model.num_layers && train.model.num_experts == model.num_experts,
            ErrorCode::kInvalidArgument, "the training trace has {} layers x {} experts, the replayed routing {} x {}",
            train.model.num_layers, train.model.num_experts, model.num_layers, model.num_experts);
  return std::make_unique<StatisticalPredictor>(name, train);
}

int64_t count_sequences(const Trace& trace) {
  std::set<int64_t> ids;
  for (const TokenRecord& t : trace.tokens) ids.insert(t.sequence_id);
  return int64_t(ids.size());
}

TraceSplit split_by_sequence(const Trace& trace) {
  std::vector<int64_t> order;
  std::set<int64_t> seen;
  for (const TokenRecord& t : trace.tokens)
    if (seen.insert(t.sequence_id).second) order.push_back(t.sequence_id);
  MOE_CHECK(order.size() >= 2, ErrorCode::kInvalidArgument,
            "the trace holds {} sequence(s), too few to split into a half to learn from and a half to replay; the "
            "prefetcher needs a training trace of its own (moe sim --profile-trace)",
            order.size());
  const std::set<int64_t> train(order.begin(), order.begin() + std::ptrdiff_t(order.size() / 2));
  TraceSplit split;
  split.train.model = split.test.model = trace.model;
  for (const TokenRecord& t : trace.tokens) (train.count(t.sequence_id) ? split.train : split.test).tokens.push_back(t);
  split.train_sequences = int64_t(train.size());
  split.test_sequences = int64_t(order.size() - train.size());
  return split;
}

}  // namespace moe::placement
