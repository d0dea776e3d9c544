// `moe bench cache`: the expert cache's acquire/release hit path beside a mutex + lookup floor.
#include <fmt/format.h>

#include "offload/cache/cache_benchmark.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"

namespace moe::tools {
namespace {

struct Flags {
  std::vector<int> threads{1, 2, 4};
  int64_t operations = 2'000'000;
  bool json = false;
};

void run(const Flags& f) {
  nlohmann::json rows = nlohmann::json::array();
  if (!f.json) fmt::print("{:>7} {:>16} {:>12} {:>7}\n", "threads", "acquire+release", "floor", "ratio");
  for (int t : f.threads) {
    const offload::CacheBenchmark b = offload::run_cache_benchmark(t, f.operations);
    rows.push_back({{"threads", t}, {"acquire_release_ns", b.acquire_release_ns}, {"floor_ns", b.floor_ns}, {"ratio", b.ratio()}});
    if (!f.json) fmt::print("{:>7} {:>13.1f} ns {:>9.1f} ns {:>7.2f}\n", t, b.acquire_release_ns, b.floor_ns, b.ratio());
  }
  if (f.json) print_json({{"benchmark", "cache"}, {"rows", rows}});
  else fmt::print("floor: one uncontended mutex lock/unlock and one hash lookup, measured now; ratio = floor / cost\n");
}

void setup(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  app.add_option("--threads", f->threads, "thread counts to try")->capture_default_str()->check(whole_number(1, 1024));
  app.add_option("--operations", f->operations, "acquire/release pairs per thread")->capture_default_str()->check(whole_number(int64_t{1}, int64_t{1} << 40));
  app.add_flag("--json", f->json, "print one JSON document");
  app.callback([f] { run(*f); });
}

const CommandRegistration kBenchCache("bench", "cache", "Expert cache hit path (acquire/release) beside a mutex + lookup floor",
                                      setup);

}  // namespace
}  // namespace moe::tools
