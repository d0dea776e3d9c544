#include "offload/gpu/transfer_benchmark.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <vector>

#include "kernels/cuda/device.h"
#include "offload/cache/host_pool.h"
#include "offload/executor/host_tier.h"
#include "offload/gpu/cuda_expert_device.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

double median_seconds(const std::function<void()>& work, int repeats) {
  work();  // warm-up
  std::vector<double> s;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    work();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

// A bf16 SwiGLU expert's layout, as ExpertLayout::of places it.
ExpertLayout bf16_expert(int64_t hidden, int64_t width) {
  ExpertLayout l;
  uint64_t cursor = 0;
  const auto place = [&](int64_t rows, int64_t cols) {
    MatrixPlacement p{DType::kBF16, rows, cols, cursor, uint64_t(rows * cols * 2)};
    cursor = (cursor + p.bytes + 63) / 64 * 64;
    return p;
  };
  l.gate = place(width, hidden);
  l.up = place(width, hidden);
  l.down = place(hidden, width);
  l.bytes = cursor;
  return l;
}

}  // namespace

double host_to_device_bandwidth(int device) {
  MOE_CHECK(device < cuda::device_count(), ErrorCode::kCuda, "no CUDA device {}", device);
  cuda::check(cudaSetDevice(device), "cudaSetDevice");
  const uint64_t bytes = uint64_t(256) << 20;
  cuda::PinnedBuffer host(bytes);
  std::memset(host.get(), 1, bytes);
  cuda::DeviceBuffer dst(bytes);
  cuda::Stream stream;
  const double s = median_seconds(
      [&] {
        cuda::check(cudaMemcpyAsync(dst.get(), host.get(), bytes, cudaMemcpyHostToDevice, stream.get()), "cudaMemcpyAsync");
        stream.synchronize();
      },
      5);
  return double(bytes) / s;
}

TransferBenchmark run_transfer_benchmark(int64_t hidden, int64_t width, int repeats) {
  MOE_CHECK(cuda::device_count() > 0, ErrorCode::kCuda, "no CUDA device is present");
  TransferBenchmark b;
  const ExpertLayout layout = bf16_expert(hidden, width);
  b.expert_bytes = layout.bytes;
  cuda::DeviceArena arena(0, layout.bytes);
  CudaExpertDevice device(arena, layout);
  std::byte* slot = device.allocate(layout.bytes);

  HostPool pool(layout.bytes);  // pinned, as the host tier's pool is with a GPU present
  const auto block = pool.allocate(layout.bytes);
  MOE_CHECK(block.has_value(), ErrorCode::kInternal, "the benchmark's host pool has no room");
  std::vector<std::byte> pageable(layout.bytes);
  // Small bf16 values (finite, no denormals) for the compute figure.
  for (uint64_t i = 0; i < layout.bytes; ++i) block->data[i] = std::byte(i % 2 ? 0x3C : 0x00);
  std::memcpy(pageable.data(), block->data, layout.bytes);

  {
    cuda::Stream stream;
    b.raw_pinned = double(layout.bytes) / median_seconds(
                                              [&] {
                                                cuda::check(cudaMemcpyAsync(slot, block->data, layout.bytes,
                                                                            cudaMemcpyHostToDevice, stream.get()),
                                                            "cudaMemcpyAsync");
                                                stream.synchronize();
                                              },
                                              repeats);
  }
  const auto upload_from = [&](const std::byte* src) {
    return [&device, slot, src, bytes = layout.bytes] {
      auto upload = device.begin_upload(slot);
      for (uint64_t at = 0; at < bytes; at += HostTier::kChunkBytes)
        upload->write(at, src + at, std::min(HostTier::kChunkBytes, bytes - at));
      upload->finish();
    };
  };
  b.from_pinned = double(layout.bytes) / median_seconds(upload_from(block->data), repeats);
  b.from_pageable = double(layout.bytes) / median_seconds(upload_from(pageable.data()), repeats);

  std::vector<float> x(static_cast<size_t>(hidden), 0.01f), y(static_cast<size_t>(hidden));
  const model::GatedMlpMatrices w = layout.views(slot);
  b.decode_compute = double(layout.bytes) / median_seconds([&] { device.run_expert(w, x.data(), 1, y.data()); }, repeats * 3);
  return b;
}

}  // namespace moe::offload
