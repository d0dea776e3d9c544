#include "runtime/serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace moe::serve {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const size_t b = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  ++counts_[b];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name, sum_, name, count_);
}

namespace {
std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void gauge(std::string& out, const std::string& name, const std::string& help, double value, const char* type = "gauge") {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
}
}  // namespace

ServerMetrics::ServerMetrics()
    : ttft_(latency_buckets()), itl_(latency_buckets()), duration_(latency_buckets()), step_(latency_buckets()) {}

void ServerMetrics::request_done(const std::string& endpoint, int status, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
  duration_.observe(seconds);
}

void ServerMetrics::first_token(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(seconds);
}

void ServerMetrics::inter_token(double seconds) {
  std::lock_guard lock(mutex_);
  itl_.observe(seconds);
}

void ServerMetrics::tokens(int64_t prompt, int64_t completion) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += uint64_t(prompt);
  completion_tokens_ += uint64_t(completion);
}

void ServerMetrics::step(int64_t tokens, double seconds, nlohmann::json engine_stats) {
  std::lock_guard lock(mutex_);
  step_.observe(seconds);
  // An exponentially decayed rate over the last few dozen steps.
  recent_tokens_ = 0.95 * recent_tokens_ + double(tokens);
  recent_seconds_ = 0.95 * recent_seconds_ + seconds;
  engine_stats_ = std::move(engine_stats);
}

std::string ServerMetrics::render(const ServingStats& s) const {
  std::lock_guard lock(mutex_);
  std::string out;
  out += "# HELP moe_requests_total Requests answered, by endpoint and HTTP status.\n# TYPE moe_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += fmt::format("moe_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  gauge(out, "moe_prompt_tokens_total", "Prompt tokens of answered requests.", double(prompt_tokens_), "counter");
  gauge(out, "moe_generation_tokens_total", "Tokens generated for answered requests.", double(completion_tokens_), "counter");
  gauge(out, "moe_queue_length", "Sequences waiting for a place in the running batch.", double(s.waiting));
  gauge(out, "moe_running_sequences", "Sequences in the running batch.", double(s.running));
  gauge(out, "moe_kv_blocks_used", "KV cache blocks in use.", double(s.kv_blocks_used));
  gauge(out, "moe_kv_blocks", "KV cache blocks in the pool.", double(s.kv_blocks));
  gauge(out, "moe_steps_total", "Batched steps run.", double(s.steps), "counter");
  gauge(out, "moe_preemptions_total", "Sequences preempted for KV blocks (recomputed later).", double(s.preemptions), "counter");
  gauge(out, "moe_generation_tokens_per_second", "Tokens generated per second over the recent steps.",
        recent_seconds_ > 0 ? recent_tokens_ / recent_seconds_ : 0.0);
  ttft_.render(out, "moe_time_to_first_token_seconds", "From a request's arrival to its first token.");
  itl_.render(out, "moe_inter_token_latency_seconds", "Between consecutive tokens of a request.");
  duration_.render(out, "moe_request_duration_seconds", "From a request's arrival to its last byte.");
  step_.render(out, "moe_step_seconds", "Time of a batched step.");
  if (engine_stats_.contains("offload")) {
    const nlohmann::json& o = engine_stats_["offload"];
    const auto get = [&](const char* key) { return o.contains(key) && o[key].is_number() ? o[key].get<double>() : 0.0; };
    out += "# HELP moe_expert_uses_total Routed expert uses, by where the expert was found.\n"
           "# TYPE moe_expert_uses_total counter\n";
    for (const char* tier : {"pinned_hits", "cache_hits", "host_hits", "nvme_reads", "cpu_computed", "skipped"})
      out += fmt::format("moe_expert_uses_total{{tier=\"{}\"}} {}\n", tier, get(tier));
    const double uses = get("expert_uses");
    gauge(out, "moe_expert_device_hit_rate", "Share of expert uses found in device memory (pinned or cached).",
          uses > 0 ? (get("pinned_hits") + get("cache_hits")) / uses : 0.0);
    out += "# HELP moe_bytes_copied_total Bytes copied, by link.\n# TYPE moe_bytes_copied_total counter\n";
    out += fmt::format("moe_bytes_copied_total{{link=\"nvme_to_host\"}} {}\n", get("bytes_nvme_to_host"));
    out += fmt::format("moe_bytes_copied_total{{link=\"host_to_device\"}} {}\n", get("bytes_host_to_device"));
    out += fmt::format("moe_bytes_copied_total{{link=\"between_devices\"}} {}\n", get("bytes_between_devices"));
    gauge(out, "moe_stall_seconds_total", "Time steps waited for expert copies.", get("stall_seconds"), "counter");
    gauge(out, "moe_prefetches_total", "Expert copies started by the prefetcher.", get("prefetches"), "counter");
  }
  return out;
}

}  // namespace moe::serve
