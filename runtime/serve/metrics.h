#pragma once
// The server's metrics in Prometheus' text exposition format (version 0.0.4), written here:
// counters of requests and tokens, histograms of time to first token, inter-token latency and
// request duration, and gauges of the scheduler (queue, batch, KV blocks) and of the offloading
// executor (hits per tier, bytes per link, stall time) as of the last step.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/serve/serving_engine.h"

namespace moe::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void request_done(const std::string& endpoint, int status, double seconds);
  void first_token(double seconds);
  void inter_token(double seconds);
  void tokens(int64_t prompt, int64_t completion);
  // After each step (the engine thread): its tokens and time, and the engine's statistics.
  void step(int64_t tokens, double seconds, nlohmann::json engine_stats);
  std::string render(const ServingStats& scheduler) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  Histogram ttft_, itl_, duration_, step_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  double recent_tokens_ = 0, recent_seconds_ = 0;  // decayed: the recent generation rate
  nlohmann::json engine_stats_;
};

}  // namespace moe::serve
