#include "kernels/cpu/matmul_benchmark.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "kernels/cpu/compute_peak.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_encoding.h"

namespace moe::cpu {
namespace {

// `count` matrices of one shape and dtype with random values, stored back to back.
struct MatrixSet {
  std::vector<uint8_t> data;
  std::vector<float> scales;
  std::vector<uint8_t> exponents;  // mxfp4
  std::vector<WeightMatrix> matrices;
  size_t bytes_each = 0;
};

MatrixSet make_set(DType dtype, int64_t rows, int64_t cols, int group_size, int count) {
  // Random rows, encoded once and copied: the values do not matter to the speed.
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> values(size_t(rows * cols));
  for (float& v : values) v = d(rng);
  const bool quantised = dtype == DType::kI8 || dtype == DType::kI4;
  const EncodedMatrix one = encode_matrix(values.data(), rows, cols, dtype, quantised ? group_size : 0);
  MatrixSet s;
  s.bytes_each = one.data.size() + one.scales.size() * sizeof(float) + one.exponents.size();
  const size_t stride = (one.data.size() + 63) / 64 * 64;  // each matrix on its own cache lines
  s.data.resize(stride * size_t(count));
  s.scales.resize(one.scales.size() * size_t(count));
  s.exponents.resize(one.exponents.size() * size_t(count));
  for (int i = 0; i < count; ++i) {
    std::copy(one.data.begin(), one.data.end(), s.data.begin() + ptrdiff_t(stride * size_t(i)));
    std::copy(one.scales.begin(), one.scales.end(), s.scales.begin() + ptrdiff_t(one.scales.size() * size_t(i)));
    WeightMatrix w = one.matrix;
    w.data = s.data.data() + stride * size_t(i);
    if (quantised) w.scales = s.scales.data() + one.scales.size() * size_t(i);
    if (dtype == DType::kF8E4M3) w.block_scales = s.scales.data() + one.scales.size() * size_t(i);  // 128 x 128 blocks
    if (dtype == DType::kMxfp4) {  // its own copy: `one`'s goes when this returns
      std::copy(one.exponents.begin(), one.exponents.end(), s.exponents.begin() + ptrdiff_t(one.exponents.size() * size_t(i)));
      w.exponents = s.exponents.data() + one.exponents.size() * size_t(i);
    }
    s.matrices.push_back(w);
  }
  return s;
}

// Relative RMS difference of the current lossy activation mode from the exact one, on random
// activations.
double error_against_exact(const WeightMatrix& w, int64_t m, ThreadPool& pool) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> x(size_t(m * w.cols)), exact(size_t(m * w.rows)), lossy(exact.size());
  for (float& v : x) v = d(rng);
  {
    const ScopedActivations reference(Activations::kExact);
    matmul(x.data(), m, w, exact.data(), nullptr, pool);
  }
  matmul(x.data(), m, w, lossy.data(), nullptr, pool);
  double err = 0, norm = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    err += double(lossy[i] - exact[i]) * double(lossy[i] - exact[i]);
    norm += double(exact[i]) * double(exact[i]);
  }
  return norm > 0 ? std::sqrt(err / norm) : 0.0;
}

}  // namespace

MatmulBenchmark run_matmul_benchmark(const std::vector<DType>& dtypes, const std::vector<MatmulShape>& shapes,
                                     const std::vector<int64_t>& batches, int group_size, size_t weight_bytes,
                                     double seconds_per_row, ThreadPool& pool) {
  MatmulBenchmark b;
  b.isa = std::string(isa_name(active_isa()));
  b.read_bandwidth = measure_read_bandwidth(pool);
  b.fma_peak = measure_fma_peak(pool);
  for (DType dtype : dtypes)
    for (const MatmulShape& shape : shapes) {
      const bool quantised = dtype == DType::kI8 || dtype == DType::kI4;
      const size_t one = dtype_bytes(dtype, size_t(shape.rows * shape.cols));
      const int count = int(std::clamp<size_t>(weight_bytes / std::max<size_t>(one, 1), 2, 4096));
      const MatrixSet set = make_set(dtype, shape.rows, shape.cols, group_size, count);
      for (int64_t m : batches) {
        std::vector<float> x(size_t(m * shape.cols), 0.5f), y(size_t(m * shape.rows));
        for (const WeightMatrix& w : set.matrices) matmul(x.data(), m, w, y.data(), nullptr, pool);  // every page touched
        int64_t calls = 0;
        const auto start = std::chrono::steady_clock::now();
        double seconds = 0;
        while (seconds < seconds_per_row || calls < int64_t(set.matrices.size())) {
          matmul(x.data(), m, set.matrices[size_t(calls) % set.matrices.size()], y.data(), nullptr, pool);
          ++calls;
          seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        }
        MatmulBenchmarkRow r;
        r.shape = shape.name;
        const bool int8_activations = quantised && activations() == Activations::kInt8;
        const bool bf16_activations = dtype == DType::kBF16 && activations() == Activations::kBf16;
        r.dtype = std::string(dtype_name(dtype)) + (int8_activations ? "/a8" : bf16_activations ? "/a16" : "");
        if (int8_activations || bf16_activations) r.error = error_against_exact(set.matrices[0], m, pool);
        r.rows = shape.rows;
        r.cols = shape.cols;
        r.tokens = m;
        r.group_size = quantised ? group_size : 0;
        r.seconds_per_call = seconds / double(calls);
        r.bytes_per_second = double(set.bytes_each) / r.seconds_per_call;
        r.flops_per_second = 2.0 * double(m * shape.rows * shape.cols) / r.seconds_per_call;
        r.ratio = m == 1 ? r.bytes_per_second / b.read_bandwidth : r.flops_per_second / b.fma_peak;
        b.rows.push_back(r);
      }
    }
  return b;
}

}  // namespace moe::cpu
