// `moe inspect TRACE [--plot FILE.svg]`: routing statistics of a router trace.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "placement/trace/trace_io.h"
#include "placement/trace/trace_stats.h"
#include "runtime/core/error.h"
#include "tools/command.h"

namespace moe::tools {
namespace {

nlohmann::json nan_as_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

void inspect_trace(const std::filesystem::path& path, const InspectOptions& options) {
  std::string source;
  const placement::Trace trace = placement::read_trace(path, &source);
  const placement::TraceStats s = placement::compute_trace_stats(trace);
  if (!options.plot_path.empty()) {
    std::ofstream out(options.plot_path);
    out << placement::render_trace_svg(s);
    out.close();
    MOE_CHECK(!out.fail(), ErrorCode::kIo, "cannot write {}", options.plot_path);
  }
  const int64_t keys = int64_t(s.model.num_layers) * s.model.num_experts;
  int max_ahead = 0;  // recorded gate guesses (moe profile), the farthest ahead
  for (const auto& t : trace.tokens)
    for (const auto& l : t.layers)
      for (const auto& g : l.guesses) max_ahead = std::max(max_ahead, g.ahead);
  if (options.json) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : s.layers)
      layers.push_back({{"counts", l.counts}, {"entropy_bits", l.entropy_bits}, {"normalized_entropy", l.normalized_entropy},
                        {"transition_accuracy", nan_as_null(l.transition_accuracy)}, {"coactivation", l.coactivation}});
    nlohmann::json lru = nlohmann::json::object();
    for (int pct : {10, 25, 50, 75}) lru[std::to_string(pct) + "%"] = s.lru_hit_rate(keys * pct / 100);
    print_json({{"kind", "trace"}, {"path", path.string()}, {"source", source}, {"model", s.model.name},
                {"layers", s.model.num_layers}, {"experts", s.model.num_experts}, {"top_k", s.model.top_k},
                {"tokens", s.tokens}, {"sequences", s.sequences}, {"gaps", s.gaps}, {"activations", s.activations},
                {"gate_guesses_ahead", max_ahead},
                {"mean_transition_accuracy", nan_as_null(s.mean_transition_accuracy)},
                {"median_reuse_distance", s.median_reuse_distance()}, {"cold_uses", s.cold_uses},
                {"reuse_histogram", s.reuse_histogram}, {"lru_hit_rate_by_cache_share", lru}, {"per_layer", layers}});
    return;
  }
  fmt::print("trace     {} ({})\n", path.string(), source);
  // Threshold routing and zero-computation experts give tokens a varying number of experts.
  const double mean = s.tokens > 0 && s.model.num_layers > 0
                          ? double(s.activations) / double(s.tokens * s.model.num_layers) : 0.0;
  const std::string routing = std::abs(mean - s.model.top_k) < 1e-9
                                  ? fmt::format("top-{}", s.model.top_k)
                                  : fmt::format("{:.2f} experts per token and layer on average", mean);
  fmt::print("model     {}: {} MoE layers x {} experts, {}\n", s.model.name, s.model.num_layers, s.model.num_experts,
             routing);
  fmt::print("tokens    {} in {} sequences, {} expert activations, {} gaps\n", s.tokens, s.sequences, s.activations, s.gaps);
  fmt::print("next layer: the most frequent successor is right {:.1f}% of the time (mean over layers, in-sample: moe "
             "predict eval judges predictors on another trace)\n",
             100 * s.mean_transition_accuracy);
  if (max_ahead > 0) fmt::print("guesses   the gates' guesses for 1 to {} layers ahead are recorded (moe profile)\n", max_ahead);
  fmt::print("reuse     median {} distinct experts between two uses; LRU hit rate with 10/25/50/75% of experts cached: "
             "{:.1f} / {:.1f} / {:.1f} / {:.1f}%\n",
             s.median_reuse_distance(), 100 * s.lru_hit_rate(keys / 10), 100 * s.lru_hit_rate(keys / 4),
             100 * s.lru_hit_rate(keys / 2), 100 * s.lru_hit_rate(keys * 3 / 4));
  fmt::print("{:>5} {:>8} {:>10}  most used experts (share)\n", "layer", "entropy", "next-acc");
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const auto& ls = s.layers[l];
    std::vector<int> order(ls.counts.size());
    for (size_t e = 0; e < order.size(); ++e) order[e] = int(e);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return ls.counts[size_t(a)] > ls.counts[size_t(b)]; });
    std::string top;
    for (size_t i = 0; i < std::min<size_t>(3, order.size()); ++i)
      top += fmt::format(" {}:{:.0f}%", order[i], ls.activations ? 100.0 * double(ls.counts[size_t(order[i])]) / double(ls.activations) : 0.0);
    fmt::print("{:>5} {:>8.3f} {:>10}  {}\n", l, ls.normalized_entropy,
               std::isnan(ls.transition_accuracy) ? std::string("-") : fmt::format("{:.1f}%", 100 * ls.transition_accuracy), top);
  }
  if (!options.plot_path.empty()) fmt::print("plot      {}\n", options.plot_path);
}

const InspectorRegistration kTraceInspector(
    "trace", [](const std::filesystem::path& p) { return std::filesystem::is_regular_file(p) && placement::is_trace_file(p); },
    inspect_trace);

}  // namespace
}  // namespace moe::tools
