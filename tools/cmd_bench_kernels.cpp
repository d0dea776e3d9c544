// `moe bench kernels`: the CPU matmul of each weight format beside its ceiling, measured in the
// same run: one token against all threads' read bandwidth, a batch against the f32 FMA peak.
#include <fmt/format.h>

#include <sstream>

#include "kernels/cpu/matmul_benchmark.h"
#include "kernels/cpu/thread_pool.h"
#include "runtime/core/error.h"
#include "runtime/core/size_parse.h"
#include "runtime/loading/model_config.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"
#include "tools/weight_flags.h"

namespace moe::tools {
namespace {

struct Flags {
  std::string config = std::string(MOE_SOURCE_DIR) + "/configs/models/mixtral-1b-shape.json";
  std::string dtypes = "bf16,f16,f32,int8,int4,fp8";
  std::vector<int64_t> batches{1, 64};
  int group_size = 32;
  std::string weight_bytes = "1GiB";
  double seconds = 0.5;
  std::string activations = "exact";
  bool json = false;
};

std::vector<DType> parse_dtypes(const std::string& list) {
  std::vector<DType> out;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    DType d;
    MOE_CHECK(parse_dtype(name, &d) && d != DType::kI32, ErrorCode::kInvalidArgument,
              "--dtypes: '{}' is not a weight format (f32, bf16, f16, int8, int4, fp8)", name);
    out.push_back(d);
  }
  return out;
}

// The products of one decode step of the model: its experts' and attention's matrices, the LM head.
std::vector<cpu::MatmulShape> shapes_of(const loading::ModelConfig& c) {
  const int64_t h = c.hidden_size, inter = c.moe_intermediate_size > 0 ? c.moe_intermediate_size : c.intermediate_size;
  const int64_t q = int64_t{c.num_heads} * c.head_dim, kv = int64_t{c.num_kv_heads} * c.head_dim;
  return {{fmt::format("expert gate/up {}x{}", inter, h), inter, h},
          {fmt::format("expert down {}x{}", h, inter), h, inter},
          {fmt::format("attention q {}x{}", q, h), q, h},
          {fmt::format("attention k/v {}x{}", kv, h), kv, h},
          {fmt::format("lm head {}x{}", c.vocab_size, h), c.vocab_size, h}};
}

void run(const Flags& f) {
  const auto config = loading::load_model_config(f.config);
  cpu::set_activations(parse_activations(f.activations));
  const auto b = cpu::run_matmul_benchmark(parse_dtypes(f.dtypes), shapes_of(config), f.batches, f.group_size,
                                           size_t(parse_byte_size(f.weight_bytes)), f.seconds, cpu::ThreadPool::global());
  if (f.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : b.rows)
      rows.push_back({{"shape", r.shape}, {"dtype", r.dtype}, {"rows", r.rows}, {"cols", r.cols}, {"tokens", r.tokens},
                      {"group_size", r.group_size}, {"seconds_per_call", r.seconds_per_call},
                      {"bytes_per_second", r.bytes_per_second}, {"flops_per_second", r.flops_per_second}, {"ratio", r.ratio}});
    for (size_t i = 0; i < b.rows.size(); ++i)
      if (b.rows[i].error >= 0) rows[i]["error_against_exact"] = b.rows[i].error;
    print_json({{"benchmark", "kernels"}, {"isa", b.isa}, {"threads", cpu::ThreadPool::global().size()},
                {"read_bytes_per_second", b.read_bandwidth}, {"fma_peak_flops_per_second", b.fma_peak}, {"rows", rows}});
    return;
  }
  fmt::print("matmul on {} with {} threads; ceilings measured now: read {:.2f} GB/s, f32 FMA peak {:.1f} GFLOP/s\n", b.isa,
             cpu::ThreadPool::global().size(), b.read_bandwidth / 1e9, b.fma_peak / 1e9);
  fmt::print("{:<28} {:>7} {:>6} {:>10} {:>9} {:>10} {:>7}\n", "product", "dtype", "tokens", "us/call", "GB/s", "GFLOP/s",
             "ratio");
  for (const auto& r : b.rows)
    fmt::print("{:<28} {:>7} {:>6} {:>10.1f} {:>9.2f} {:>10.1f} {:>7.2f}  {} {}\n", r.shape, r.dtype, r.tokens,
               r.seconds_per_call * 1e6, r.bytes_per_second / 1e9, r.flops_per_second / 1e9, r.ratio,
               r.tokens == 1 ? "of read bandwidth" : "of FMA peak",
               r.error >= 0 ? fmt::format("(error against exact {:.2f}%)", 100 * r.error) : std::string());
}

void setup(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  app.add_option("--config", f->config, "config.json whose products are timed")->capture_default_str()->check(CLI::ExistingFile);
  app.add_option("--dtypes", f->dtypes, "weight formats, comma-separated")->capture_default_str();
  app.add_option("--batch", f->batches, "tokens per product (1: decode; more: prefill, batched decode)")
      ->capture_default_str()
      ->delimiter(',')
      ->check(whole_number(int64_t{1}, int64_t{1} << 16));
  app.add_option("--group-size", f->group_size, "int8/int4 scale group")->capture_default_str()->check(whole_number(1, 1 << 16));
  app.add_option("--weight-bytes", f->weight_bytes, "weights cycled through per product, more than the caches hold")
      ->capture_default_str();
  app.add_option("--seconds", f->seconds, "time per row")->capture_default_str()->check(number_above(0, 3600));
  add_activations_option(app, f->activations);
  app.add_flag("--json", f->json, "print one JSON document");
  app.callback([f] { run(*f); });
}

const CommandRegistration kBenchKernels("bench", "kernels",
                                        "CPU matmul per weight format beside read bandwidth and FMA peak, measured now", setup);

}  // namespace
}  // namespace moe::tools
