#pragma once
// What a router trace says about a model's routing: how skewed each layer's expert use is,
// which experts fire together, how well one layer's choice predicts the next, and how soon an
// expert is used again (which fixes any LRU cache's hit rate in closed form).
#include <cstdint>
#include <string>
#include <vector>

#include "placement/trace/trace.h"

namespace moe::placement {

struct LayerStats {
  std::vector<int64_t> counts;  // activations per expert
  int64_t activations = 0;
  double entropy_bits = 0;      // of the expert-use distribution
  double normalized_entropy = 0;  // entropy / log2(num_experts): 1 is uniform
  // Layer l -> l+1: how often the most frequent next expert given one chosen here is among
  // the next layer's choices (in-sample). NaN for the last layer or without pairs.
  double transition_accuracy = 0;
  std::vector<int64_t> coactivation;  // [e * num_experts + f]: tokens choosing both e and f
};

struct TraceStats {
  ModelIdentity model;
  int64_t tokens = 0;
  int64_t sequences = 0;
  int64_t gaps = 0;
  int64_t activations = 0;
  std::vector<LayerStats> layers;
  double mean_transition_accuracy = 0;
  // LRU stack distances over the stream of (layer, expert) uses in execution order (token by
  // token, layer by layer): reuse_histogram[d] counts uses with d distinct other experts used
  // since the last use of the same one; cold_uses counts first uses.
  std::vector<int64_t> reuse_histogram;
  int64_t cold_uses = 0;

  // Hit rate of an LRU cache of `slots` experts on that stream (a use hits when d < slots).
  double lru_hit_rate(int64_t slots) const;
  // Median stack distance of the reused uses; -1 without reuse.
  int64_t median_reuse_distance() const;
};

TraceStats compute_trace_stats(const Trace& trace);

// An SVG with an expert-use heatmap (layers x experts), per-layer entropy and transition
// accuracy, and the LRU hit rate against cache size implied by the reuse distances.
std::string render_trace_svg(const TraceStats& stats);

}  // namespace moe::placement
