#include "runtime/cuda/gemm_benchmark.h"

#include <fmt/format.h>

#include <random>

#include "kernels/cuda/device.h"
#include "kernels/cuda/grouped_gemm.h"
#include "runtime/core/error.h"
#include "runtime/cuda/cuda_resources.h"

namespace moe::cuda {

std::vector<GpuBenchmarkRow> run_gemm_benchmark(int experts, int64_t tokens, int64_t rows, int64_t cols, int repeats) {
  MOE_CHECK(device_count() > 0, ErrorCode::kCuda, "no CUDA device is present");
  check(cudaSetDevice(0), "cudaSetDevice");
  const Stream stream;
  const CublasHandle blas(stream.get());
  const double flops = 2.0 * double(experts) * double(tokens) * double(rows) * double(cols);
  const uint64_t values = uint64_t(rows) * uint64_t(cols);

  std::mt19937 rng(7);
  std::vector<float> host(static_cast<size_t>(uint64_t(experts) * uint64_t(tokens) * uint64_t(cols)));
  for (float& v : host) v = std::uniform_real_distribution<float>(-1, 1)(rng);
  DeviceBuffer x(sizeof(float) * host.size()), y(sizeof(float) * uint64_t(experts) * uint64_t(tokens) * uint64_t(rows));
  check(cudaMemcpy(x.get(), host.data(), sizeof(float) * host.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
  const auto x_of = [&](int e) { return x.get<float>() + int64_t(e) * tokens * cols; };
  const auto y_of = [&](int e) { return y.get<float>() + int64_t(e) * tokens * rows; };

  // The ceilings: cuBLAS SGEMM per expert over weights already in f32 (small values, finite), and
  // cuBLAS's bf16 tensor-core GEMM per expert on bf16 activations and weights, f32 accumulation:
  // the grouped GEMM does three such products per term (its activations split in three), so a
  // third of that rate is its ceiling.
  double sgemm = 0, bf16_gemm = 0;
  {
    DeviceBuffer widened(sizeof(float) * values * uint64_t(experts));
    check(cudaMemset(widened.get(), 0x3C, widened.bytes()), "cudaMemset");
    const float one = 1.0f, zero = 0.0f;
    sgemm = flops / median_seconds(
                        [&] {
                          for (int e = 0; e < experts; ++e)
                            check_cublas(cublasSgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(tokens), int(cols), &one,
                                                     widened.get<float>() + uint64_t(e) * values, int(cols), x_of(e), int(cols),
                                                     &zero, y_of(e), int(rows)),
                                         "cublasSgemm");
                        },
                        repeats, stream.get());
    // The same bytes read as bf16 (0x3C3C, finite) for both operands.
    std::byte* w16 = widened.get();
    std::byte* x16 = widened.get() + 2 * values * uint64_t(experts);
    bf16_gemm = flops / median_seconds(
                            [&] {
                              for (int e = 0; e < experts; ++e)
                                check_cublas(cublasGemmEx(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(tokens), int(cols), &one,
                                                          w16 + 2 * uint64_t(e) * values, CUDA_R_16BF, int(cols),
                                                          x16 + 2 * uint64_t(e) * uint64_t(tokens * cols), CUDA_R_16BF, int(cols),
                                                          &zero, y_of(e), CUDA_R_32F, int(rows), CUBLAS_COMPUTE_32F,
                                                          CUBLAS_GEMM_DEFAULT),
                                             "cublasGemmEx (bf16)");
                            },
                            repeats, stream.get());
  }
  const double ceiling = bf16_gemm / 3;
  const std::string ceiling_name = "a third of cuBLAS's bf16 tensor-core GEMM per expert (three terms a product)";

  std::vector<GpuBenchmarkRow> out;
  const int group = 128;
  const std::string shape = fmt::format("{} experts x {} rows, {}x{}", experts, tokens, rows, cols);
  const int64_t grid_cols = (cols + group - 1) / group;  // fp8: 128 x 128 blocks as DeepSeek-V3's
  for (const WeightFormat format : {WeightFormat::kBF16, WeightFormat::kInt8, WeightFormat::kInt4, WeightFormat::kFp8}) {
    const bool fp8 = format == WeightFormat::kFp8;
    const uint64_t data = format == WeightFormat::kBF16 ? 2 * values : format == WeightFormat::kInt4 ? values / 2 : values;
    const uint64_t scales = format == WeightFormat::kBF16 ? 0 : fp8 ? uint64_t((rows + group - 1) / group * grid_cols) : values / group;
    DeviceBuffer weights((data + sizeof(float) * scales) * uint64_t(experts));
    check(cudaMemset(weights.get(), 0x3C, weights.bytes()), "cudaMemset");  // every byte 0x3C: finite bf16 and scales
    std::vector<GemmProblem> problems;
    for (int e = 0; e < experts; ++e) {
      std::byte* base = weights.get() + uint64_t(e) * data;
      const auto* scale = reinterpret_cast<const float*>(weights.get() + uint64_t(experts) * data) + uint64_t(e) * scales;
      DeviceWeights w{base, scales ? scale : nullptr, format, rows, cols, scales && !fp8 ? group : 0};
      if (fp8) {
        w.block_rows = w.block_cols = group;
        w.block_stride = grid_cols;
      }
      problems.push_back({w, x_of(e), y_of(e), tokens});
    }
    const double seconds = median_seconds(
        [&] { check(grouped_expert_gemm(problems.data(), int(problems.size()), stream.get()), "grouped_expert_gemm"); }, repeats,
        stream.get());
    static const char* const kNames[] = {"bf16", "int8 g128", "int4 g128", "fp8 128x128"};
    out.push_back({fmt::format("grouped gemm {} ({})", kNames[int(format)], shape), flops / seconds, ceiling, ceiling_name,
                   GpuBenchmarkRow::Unit::kFlops});
  }
  out.push_back({fmt::format("cuBLAS SGEMM per expert, f32 weights ({})", shape), sgemm, ceiling, ceiling_name,
                 GpuBenchmarkRow::Unit::kFlops});
  out.push_back({fmt::format("cuBLAS bf16 GEMM per expert, one term ({})", shape), bf16_gemm, ceiling, ceiling_name,
                 GpuBenchmarkRow::Unit::kFlops});
  return out;
}

}  // namespace moe::cuda
