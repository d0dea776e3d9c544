#include "kernels/cuda/gpu_benchmark.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cuda/device.h"
#include "kernels/cuda/expert_gemv.h"
#include "runtime/core/error.h"

namespace moe::cuda {

double median_seconds(const std::function<void()>& work, int repeats, cudaStream_t stream) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  for (int i = 0; i < 2; ++i) work();
  std::vector<float> ms;
  for (int i = 0; i < repeats; ++i) {
    check(cudaEventRecord(start, stream), "cudaEventRecord");
    work();
    check(cudaEventRecord(stop, stream), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float t = 0;
    check(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] / 1e3;
}

namespace {

struct Device {
  explicit Device(size_t bytes) { check(cudaMalloc(&ptr, bytes), "cudaMalloc"); }
  ~Device() { cudaFree(ptr); }
  void* ptr = nullptr;
};

}  // namespace

GpuBenchmark run_gpu_benchmark(int64_t rows, int64_t cols, int repeats) {
  MOE_CHECK(device_count() > 0, ErrorCode::kCuda, "no CUDA device is present");
  GpuBenchmark b;
  b.device = describe_device(0);
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");

  // Ceiling 1: a large device-to-device copy, counting bytes read and written.
  const size_t copy_bytes = size_t(1) << 30;
  Device src(copy_bytes), dst(copy_bytes);
  check(cudaMemset(src.ptr, 1, copy_bytes), "cudaMemset");
  const double d2d = 2.0 * double(copy_bytes) /
                     median_seconds([&] { check(cudaMemcpyAsync(dst.ptr, src.ptr, copy_bytes, cudaMemcpyDeviceToDevice, stream), "copy"); },
                                    repeats, stream);

  // Expert GEMV over several weight matrices in turn, so no run finds its weights in L2.
  constexpr int kSets = 4;
  std::mt19937 rng(1);
  std::vector<float> x(static_cast<size_t>(cols));
  for (float& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
  Device dx(x.size() * sizeof(float)), dy(size_t(rows) * sizeof(float));
  check(cudaMemcpy(dx.ptr, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
  struct Format {
    const char* name;
    WeightFormat format;
    size_t bytes;
  };
  const int group = 128, block = 128;  // fp8: DeepSeek-V3's 128 x 128 blocks
  const size_t scales_bytes = size_t(rows * cols / group) * sizeof(float);
  const int64_t grid_cols = (cols + block - 1) / block;
  const size_t grid_bytes = size_t((rows + block - 1) / block * grid_cols) * sizeof(float);
  for (const Format f : {Format{"gemv bf16", WeightFormat::kBF16, size_t(rows * cols * 2)},
                         Format{"gemv int8 g128", WeightFormat::kInt8, size_t(rows * cols) + scales_bytes},
                         Format{"gemv int4 g128", WeightFormat::kInt4, size_t(rows * cols / 2) + scales_bytes},
                         Format{"gemv fp8 128x128", WeightFormat::kFp8, size_t(rows * cols) + grid_bytes}}) {
    std::vector<std::unique_ptr<Device>> weights;
    std::vector<uint8_t> random_bytes(f.bytes);
    for (auto& v : random_bytes) v = uint8_t(rng() & 0x3F);  // small values: finite bf16 and fp8, any int
    for (int s = 0; s < kSets; ++s) {
      weights.push_back(std::make_unique<Device>(f.bytes));
      check(cudaMemcpy(weights.back()->ptr, random_bytes.data(), f.bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
    }
    int set = 0;
    const double seconds = median_seconds(
        [&] {
          auto* base = static_cast<uint8_t*>(weights[size_t(set++ % kSets)]->ptr);
          const bool fp8 = f.format == WeightFormat::kFp8;
          const size_t data_bytes = f.format == WeightFormat::kBF16 ? f.bytes : f.bytes - (fp8 ? grid_bytes : scales_bytes);
          DeviceWeights w{base, f.format == WeightFormat::kBF16 ? nullptr : reinterpret_cast<const float*>(base + data_bytes),
                          f.format, rows, cols, f.format == WeightFormat::kBF16 || fp8 ? 0 : group};
          if (fp8) {
            w.block_rows = w.block_cols = block;
            w.block_stride = grid_cols;
          }
          check(expert_gemv(w, static_cast<float*>(dx.ptr), 1, static_cast<float*>(dy.ptr), stream), "expert_gemv");
        },
        repeats, stream);
    b.rows.push_back({f.name, double(f.bytes) / seconds, d2d, "device-to-device copy (read + write)"});
  }

  cudaStreamDestroy(stream);
  return b;
}

}  // namespace moe::cuda
