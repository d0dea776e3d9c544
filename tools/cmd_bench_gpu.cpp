// `moe bench gpu`: expert GEMV, the grouped expert GEMM, an expert's decode step and the engine's host-to-device expert
// copies beside their ceilings on this GPU, measured in the same run.
#include <fmt/format.h>

#include "runtime/core/error.h"
#include "tools/command.h"

#if MOE_HAVE_CUDA
#include "kernels/cuda/gpu_benchmark.h"
#include "runtime/cuda/gemm_benchmark.h"
#include "offload/gpu/transfer_benchmark.h"
#endif

namespace moe::tools {
namespace {

#if MOE_HAVE_CUDA
const char* unit(const cuda::GpuBenchmarkRow& r) { return r.unit == cuda::GpuBenchmarkRow::Unit::kBytes ? "GB/s" : "TFLOP/s"; }
#endif

void run(bool json) {
#if MOE_HAVE_CUDA
  cuda::GpuBenchmark b = cuda::run_gpu_benchmark();
  for (auto& row : cuda::run_gemm_benchmark()) b.rows.push_back(std::move(row));
  // A dense projection's prefill (one problem: Mixtral's q over 512 tokens), where DeviceMatmul calls cuBLAS SGEMM.
  for (auto& row : cuda::run_gemm_benchmark(1, 512, 4096, 4096)) b.rows.push_back(std::move(row));
  const offload::TransferBenchmark t = offload::run_transfer_benchmark();
  const double d2d = b.rows.empty() ? 0 : b.rows.front().ceiling_value;
  const std::string raw = "one raw pinned cudaMemcpyAsync";
  const std::string expert = fmt::format("{} MiB expert", t.expert_bytes >> 20);
  b.rows.push_back({"1 token through a " + expert + " (engine)", t.decode_compute, d2d, "device-to-device copy (read + write)"});
  b.rows.push_back({"h2d " + expert + ", pinned pool", t.from_pinned, t.raw_pinned, raw});
  b.rows.push_back({"h2d " + expert + ", pageable memory", t.from_pageable, t.raw_pinned, raw});
  if (json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : b.rows)
      rows.push_back({{"name", r.name}, {"unit", unit(r)}, {"value", r.value}, {"ceiling_value", r.ceiling_value},
                      {"ceiling", r.ceiling}, {"ratio", r.ratio()}});
    print_json({{"benchmark", "gpu"}, {"device", b.device}, {"rows", rows}});
    return;
  }
  fmt::print("device: {}\n{:<48} {:>9} {:>9} {:>8} {:>6}  ceiling\n", b.device, "figure", "value", "ceiling", "unit", "ratio");
  for (const auto& r : b.rows) {
    const double scale = r.unit == cuda::GpuBenchmarkRow::Unit::kBytes ? 1e9 : 1e12;
    fmt::print("{:<48} {:>9.1f} {:>9.1f} {:>8} {:>6.2f}  {}\n", r.name, r.value / scale, r.ceiling_value / scale, unit(r), r.ratio(),
               r.ceiling);
  }
#else
  (void)json;
  fail(ErrorCode::kUnsupported, "this build has no CUDA backend (configure with MOE_CUDA=ON where nvcc exists)");
#endif
}

void setup(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  app.add_flag("--json", *json, "print one JSON document");
  app.callback([json] { run(*json); });
}

const CommandRegistration kBenchGpu("bench", "gpu", "Expert GEMV and GEMM and host-to-device copies beside this GPU's ceilings", setup);

}  // namespace
}  // namespace moe::tools
