#include "placement/trace/trace_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace moe::placement {

double TraceStats::lru_hit_rate(int64_t slots) const {
  int64_t hits = 0, total = cold_uses;
  for (size_t d = 0; d < reuse_histogram.size(); ++d) {
    total += reuse_histogram[d];
    if (int64_t(d) < slots) hits += reuse_histogram[d];
  }
  return total > 0 ? double(hits) / double(total) : 0.0;
}

int64_t TraceStats::median_reuse_distance() const {
  int64_t reused = 0;
  for (int64_t c : reuse_histogram) reused += c;
  if (reused == 0) return -1;
  int64_t seen = 0;
  for (size_t d = 0; d < reuse_histogram.size(); ++d) {
    seen += reuse_histogram[d];
    if (2 * seen >= reused) return int64_t(d);
  }
  return int64_t(reuse_histogram.size()) - 1;
}

TraceStats compute_trace_stats(const Trace& trace) {
  TraceStats s;
  s.model = trace.model;
  s.tokens = int64_t(trace.tokens.size());
  s.gaps = trace.gaps;
  const int L = trace.model.num_layers, E = trace.model.num_experts;
  s.layers.resize(size_t(L));
  for (auto& l : s.layers) {
    l.counts.assign(size_t(E), 0);
    l.coactivation.assign(size_t(E) * size_t(E), 0);
  }
  std::set<int64_t> sequences;
  // transitions[l][e * E + f]: tokens choosing e at layer l and f at layer l + 1.
  std::vector<std::vector<int64_t>> transitions(size_t(std::max(L - 1, 0)), std::vector<int64_t>(size_t(E) * size_t(E), 0));
  // LRU stack over (layer, expert) keys, most recent first.
  std::vector<int32_t> stack;
  for (const TokenRecord& t : trace.tokens) {
    sequences.insert(t.sequence_id);
    for (size_t i = 0; i < t.layers.size(); ++i) {
      const LayerRouting& r = t.layers[i];
      LayerStats& ls = s.layers[size_t(r.layer)];
      for (int32_t e : r.experts) {
        ++ls.counts[size_t(e)];
        ++ls.activations;
        for (int32_t f : r.experts)
          if (f != e) ++ls.coactivation[size_t(e) * size_t(E) + size_t(f)];
        const int32_t key = r.layer * E + e;
        const auto at = std::find(stack.begin(), stack.end(), key);
        if (at == stack.end()) {
          ++s.cold_uses;
          stack.insert(stack.begin(), key);
        } else {
          const auto d = size_t(at - stack.begin());
          if (s.reuse_histogram.size() <= d) s.reuse_histogram.resize(d + 1, 0);
          ++s.reuse_histogram[d];
          std::rotate(stack.begin(), at, at + 1);
        }
      }
      if (i + 1 < t.layers.size() && t.layers[i + 1].layer == r.layer + 1)
        for (int32_t e : r.experts)
          for (int32_t f : t.layers[i + 1].experts) ++transitions[size_t(r.layer)][size_t(e) * size_t(E) + size_t(f)];
    }
  }
  s.sequences = int64_t(sequences.size());

  // Transition accuracy: predict argmax_f T[e][f] for every chosen e; right when f is chosen next.
  double accuracy_sum = 0;
  int accuracy_layers = 0;
  for (int l = 0; l < L; ++l) {
    LayerStats& ls = s.layers[size_t(l)];
    s.activations += ls.activations;
    for (int64_t c : ls.counts) {
      if (c == 0) continue;
      const double p = double(c) / double(ls.activations);
      ls.entropy_bits -= p * std::log2(p);
    }
    ls.normalized_entropy = E > 1 ? ls.entropy_bits / std::log2(double(E)) : 0.0;
    ls.transition_accuracy = std::numeric_limits<double>::quiet_NaN();
    if (l + 1 >= L) continue;
    const auto& T = transitions[size_t(l)];
    std::vector<int32_t> best(static_cast<size_t>(E), -1);
    for (int e = 0; e < E; ++e) {
      int64_t top = 0;
      for (int f = 0; f < E; ++f)
        if (T[size_t(e) * size_t(E) + size_t(f)] > top) top = T[size_t(e) * size_t(E) + size_t(f)], best[size_t(e)] = f;
    }
    int64_t right = 0, pairs = 0;
    for (const TokenRecord& t : trace.tokens)
      for (size_t i = 0; i + 1 < t.layers.size(); ++i) {
        if (t.layers[i].layer != l || t.layers[i + 1].layer != l + 1) continue;
        const auto& next = t.layers[i + 1].experts;
        for (int32_t e : t.layers[i].experts) {
          ++pairs;
          right += std::find(next.begin(), next.end(), best[size_t(e)]) != next.end();
        }
      }
    if (pairs > 0) {
      ls.transition_accuracy = double(right) / double(pairs);
      accuracy_sum += ls.transition_accuracy;
      ++accuracy_layers;
    }
  }
  s.mean_transition_accuracy = accuracy_layers > 0 ? accuracy_sum / accuracy_layers : std::numeric_limits<double>::quiet_NaN();
  return s;
}

}  // namespace moe::placement
