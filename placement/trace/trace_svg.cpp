// SVG pictures of trace statistics: plain SVG 1.1 text, no scripts, readable in any browser.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "placement/trace/trace_stats.h"

namespace moe::placement {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// White (0) to deep blue (1).
std::string shade(double v) {
  v = std::clamp(v, 0.0, 1.0);
  const auto c = [&](int from, int to) { return int(std::lround(from + (to - from) * v)); };
  return fmt::format("rgb({},{},{})", c(255, 8), c(255, 48), c(255, 107));
}

}  // namespace

std::string render_trace_svg(const TraceStats& s) {
  const int L = s.model.num_layers, E = s.model.num_experts;
  const int cell_w = std::clamp(480 / std::max(E, 1), 4, 40), cell_h = std::clamp(480 / std::max(L, 1), 4, 24);
  const int left = 60, top = 50, heat_w = cell_w * E, heat_h = cell_h * L;
  const int panel_x = left + heat_w + 80, panel_w = 300;
  const int width = panel_x + panel_w + 40, height = std::max(top + heat_h + 60, 2 * 260 + 60);
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"20\" font-size=\"14\">{}: {} tokens, {} layers x {} experts, {} gaps</text>\n",
      width, height, left, escape(s.model.name), s.tokens, L, E, s.gaps);

  // Heatmap: each row is a layer, shaded by the expert's share relative to the row's largest.
  svg += fmt::format("<text x=\"{}\" y=\"{}\">expert use per layer (darker: more)</text>\n", left, top - 8);
  for (int l = 0; l < L; ++l) {
    const LayerStats& ls = s.layers[size_t(l)];
    const int64_t top_count = std::max<int64_t>(1, *std::max_element(ls.counts.begin(), ls.counts.end()));
    for (int e = 0; e < E; ++e) {
      const int64_t c = ls.counts[size_t(e)];
      svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>layer {} expert {}: {} ({:.1f}%)</title></rect>\n",
                         left + e * cell_w, top + l * cell_h, cell_w, cell_h, shade(double(c) / double(top_count)), l, e, c,
                         ls.activations ? 100.0 * double(c) / double(ls.activations) : 0.0);
    }
    if (L <= 64 && (l % std::max(1, L / 16) == 0))
      svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", left - 4, top + l * cell_h + cell_h - 1, l);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\">expert</text>\n", left + heat_w / 2 - 15, top + heat_h + 16);
  svg += fmt::format("<text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\">layer</text>\n", top + heat_h / 2, top + heat_h / 2);

  // Panel 1: per-layer normalised entropy and transition accuracy, 0..1.
  const int p1_top = top, p_h = 200;
  svg += fmt::format("<text x=\"{}\" y=\"{}\">per layer: normalised entropy (grey), next-layer accuracy (orange)</text>\n",
                     panel_x, p1_top - 8);
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", panel_x, p1_top,
                     panel_w, p_h);
  const double bar = double(panel_w) / std::max(L, 1);
  for (int l = 0; l < L; ++l) {
    const LayerStats& ls = s.layers[size_t(l)];
    const double h1 = p_h * std::clamp(ls.normalized_entropy, 0.0, 1.0);
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#bbb\"><title>layer {}: entropy {:.3f}</title></rect>\n",
                       panel_x + l * bar, p1_top + p_h - h1, bar * 0.5, h1, l, ls.normalized_entropy);
    if (!std::isnan(ls.transition_accuracy)) {
      const double h2 = p_h * ls.transition_accuracy;
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#f28e2b\"><title>layer {}: next-layer accuracy {:.3f}</title></rect>\n",
                         panel_x + l * bar + bar * 0.5, p1_top + p_h - h2, bar * 0.5, h2, l, ls.transition_accuracy);
    }
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">1</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n",
                     panel_x - 4, p1_top + 10, panel_x - 4, p1_top + p_h);

  // Panel 2: LRU hit rate against cache size (slots), from the reuse distances.
  const int p2_top = p1_top + p_h + 60;
  const int64_t keys = int64_t(L) * E;
  svg += fmt::format("<text x=\"{}\" y=\"{}\">LRU hit rate against cache slots (of {} experts)</text>\n", panel_x, p2_top - 8, keys);
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", panel_x, p2_top,
                     panel_w, p_h);
  std::string points;
  const int steps = 64;
  for (int i = 0; i <= steps; ++i) {
    const int64_t slots = keys * i / steps;
    points += fmt::format("{:.1f},{:.1f} ", panel_x + double(panel_w) * i / steps, p2_top + p_h - p_h * s.lru_hit_rate(slots));
  }
  svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"#4e79a7\" stroke-width=\"2\"/>\n", points);
  svg += fmt::format("<text x=\"{}\" y=\"{}\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", panel_x,
                     p2_top + p_h + 14, panel_x + panel_w, p2_top + p_h + 14, keys);
  svg += "</svg>\n";
  return svg;
}

}  // namespace moe::placement
