#include "tools/calibrate.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/thread_pool.h"

namespace moe::tools {
namespace {

// Best of three: 32 rows through a 2048 x 2048 bf16 matrix, as a prefill's expert GEMM.
double measure_matmul_flops() {
  const int64_t n = 2048, m = 32;
  std::vector<uint16_t> w(size_t(n * n), 0x3c00);  // bf16 1/128
  std::vector<float> x(size_t(m * n), 0.5f), y(size_t(m * n));
  cpu::WeightMatrix matrix{w.data(), DType::kBF16, n, n, nullptr, 0};
  double best = 0;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    cpu::matmul(x.data(), m, matrix, y.data(), nullptr, cpu::ThreadPool::global());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * m * n * n / s);
  }
  return best;
}

// Bytes per second a decode GEMV (one row) streams through bf16 weights larger than the caches:
// what the cost model's roofline should see as this device's memory bandwidth.
double measure_gemv_bandwidth() {
  const int64_t n = 2048;
  const int matrices = 16;  // 128 MiB in all
  std::vector<std::vector<uint16_t>> w(matrices, std::vector<uint16_t>(size_t(n * n), 0x3c00));
  std::vector<float> x(static_cast<size_t>(n), 0.5f), y(static_cast<size_t>(n));
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    for (const auto& m : w) {
      const cpu::WeightMatrix matrix{m.data(), DType::kBF16, n, n, nullptr, 0};
      cpu::matmul(x.data(), 1, matrix, y.data(), nullptr, cpu::ThreadPool::global());
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, double(matrices) * double(n * n * 2) / s);
  }
  return best;
}

}  // namespace

placement::HardwareProfile calibrate_this_machine() {
  placement::HardwareProfile p;
  p.name = "this-machine";
  p.description = "measured by moe bench calibrate (CPU backend: virtual devices)";
  p.gpu_model = "CPU virtual device";
  p.gpu_count = 1;
  p.copies_overlap_compute = false;  // the copy thread shares the cores and the memory bus
  const double memory = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  p.host_memory_bytes = memory;
  p.gpu_memory_bytes = memory;
  p.gpu_memory_bandwidth = p.host_memory_bandwidth = measure_gemv_bandwidth();
  p.gpu_bf16_flops = p.cpu_flops = measure_matmul_flops();
  p.host_to_device_bandwidth = p.nvme_read_bandwidth = cpu::measure_memcpy_bandwidth();
  p.nvme_iops = 1e6;
  p.cpu_cores = int(std::thread::hardware_concurrency());
  const std::string when = "measured by moe bench calibrate";
  for (const char* s : {"gpu", "peers", "host", "nvme"}) p.sources[s] = when;
  return p;
}

std::string hardware_profile_yaml(const placement::HardwareProfile& p) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  return fmt::format(
      "name: {}\ndescription: {}\ngpu:\n  model: {}\n  count: 1\n  memory_gib: {:.2f}\n  memory_gb_per_s: {:.2f}\n"
      "  bf16_tflops: {:.4f}\n  host_link_gb_per_s: {:.2f}\n  copies_overlap_compute: false\n  source: \"{}: bf16 GEMV streaming 128 MiB of weights, bf16 matmul of 32 rows, "
      "single-thread memcpy\"\npeers:\n  link: none\n  gb_per_s: 0\n  source: \"one device\"\nhost:\n  memory_gib: {:.2f}\n"
      "  memory_gb_per_s: {:.2f}\n  cpu_cores: {}\n  cpu_gflops: {:.1f}\n  source: \"{}\"\nnvme:\n  read_gb_per_s: {:.2f}\n"
      "  iops: {:.0f}\n  source: \"{}: experts are read from the mapped weights (page cache), so memcpy\"\n",
      p.name, p.description, p.gpu_model, p.gpu_memory_bytes / kGiB, p.gpu_memory_bandwidth / 1e9, p.gpu_bf16_flops / 1e12,
      p.host_to_device_bandwidth / 1e9, p.sources.at("gpu"), p.host_memory_bytes / kGiB, p.host_memory_bandwidth / 1e9,
      p.cpu_cores, p.cpu_flops / 1e9, p.sources.at("host"), p.nvme_read_bandwidth / 1e9, p.nvme_iops, p.sources.at("nvme"));
}

}  // namespace moe::tools
