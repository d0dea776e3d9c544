// `moe bench io`: expert streaming from a store beside the disk's O_DIRECT ceiling.
#include <fmt/format.h>

#include "offload/store/io_benchmark.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"

namespace moe::tools {
namespace {

struct Flags {
  std::string store;
  std::vector<int> depths{1, 4, 16, 64};
  int passes = 2;
  bool json = false;
};

void run(const Flags& f) {
  const offload::IoBenchmark b = offload::run_io_benchmark(f.store, f.depths, f.passes);
  double best = 0;
  for (const auto& r : b.rows) best = std::max(best, r.bytes_per_second());
  const double ratio = b.ceiling_bytes_per_second > 0 ? best / b.ceiling_bytes_per_second : 0;
  if (f.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : b.rows)
      rows.push_back({{"method", r.method}, {"queue_depth", r.queue_depth}, {"direct", r.direct}, {"bytes", r.bytes},
                      {"seconds", r.seconds}, {"bytes_per_second", r.bytes_per_second()}});
    print_json({{"benchmark", "io"}, {"store", f.store}, {"rows", rows}, {"best_bytes_per_second", best},
                {"ceiling_bytes_per_second", b.ceiling_bytes_per_second}, {"ceiling_tool", b.ceiling_tool}, {"ratio", ratio}});
    return;
  }
  fmt::print("{:<10} {:>5} {:>7} {:>10}\n", "method", "depth", "direct", "GB/s");
  for (const auto& r : b.rows)
    fmt::print("{:<10} {:>5} {:>7} {:>10.2f}\n", r.method, r.queue_depth, r.direct ? "yes" : "no", r.bytes_per_second() / 1e9);
  if (b.ceiling_tool.empty()) {
    fmt::print("ceiling  unavailable (neither fio nor dd ran)\n");
  } else {
    fmt::print("ceiling  {:.2f} GB/s ({}, same file, measured now); best / ceiling = {:.2f}\n",
               b.ceiling_bytes_per_second / 1e9, b.ceiling_tool, ratio);
  }
}

void setup(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  app.add_option("--store,-s", f->store, "expert store file")->required()->check(CLI::ExistingFile);
  app.add_option("--depths", f->depths, "queue depths to try")->capture_default_str()->check(whole_number(1, 4096));
  app.add_option("--passes", f->passes, "reads of every blob per depth")->capture_default_str()->check(whole_number(1, 1000));
  app.add_flag("--json", f->json, "print one JSON document");
  app.callback([f] { run(*f); });
}

const CommandRegistration kBenchIo("bench", "io", "Expert streaming from a store beside the disk's O_DIRECT ceiling", setup);

}  // namespace
}  // namespace moe::tools
