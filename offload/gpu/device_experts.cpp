#include "offload/gpu/device_experts.h"

#include <algorithm>

#include "kernels/cuda/device.h"
#include "kernels/cuda/ops.h"
#include "runtime/core/error.h"
#include "runtime/model/expert_groups.h"

namespace moe::offload {
namespace {

uint64_t aligned(uint64_t bytes) { return (bytes + 255) / 256 * 256; }

void check_bf16(const Tensor& t, const char* what) {
  MOE_CHECK(t.dtype() == DType::kBF16, ErrorCode::kUnsupported, "the GPU expert runner takes bf16 experts; an expert's {} is {}",
            what, dtype_name(t.dtype()));
}

}  // namespace

DeviceExperts::DeviceExperts(const model::ModelWeights& weights, int device) : device_(device) {
  MOE_CHECK(device >= 0 && device < cuda::device_count(), ErrorCode::kCuda, "no CUDA device {} (found {})", device,
            cuda::device_count());
  cuda::check(cudaSetDevice(device), "cudaSetDevice");
  // One pass to size the arena, one to fill it.
  uint64_t total = 0;
  for (const auto& layer : weights.layers)
    for (const model::GatedMlp& e : layer.moe.experts) {
      if (e.gated()) {
        check_bf16(e.gate.weight, "gate");
        total += aligned(e.gate.weight.nbytes());
      }
      check_bf16(e.up.weight, "up");
      check_bf16(e.down.weight, "down");
      total += aligned(e.up.weight.nbytes()) + aligned(e.down.weight.nbytes());
      if (e.up.bias.defined()) total += aligned(e.up.bias.nbytes());
      hidden_ = std::max(hidden_, e.up.weight.dim(1));
      width_ = std::max(width_, e.up.weight.dim(0));
    }
  MOE_CHECK(total > 0, ErrorCode::kInvalidArgument, "the model has no resident routed experts to put on the GPU");
  cuda::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  cuda::check(cudaMalloc(&arena_, total), "cudaMalloc (experts)");
  arena_bytes_ = total;
  const int64_t rows = cuda::kMaxGemvTokens;
  cuda::check(cudaMalloc(reinterpret_cast<void**>(&scratch_), sizeof(float) * size_t(rows * (2 * hidden_ + 2 * width_))),
              "cudaMalloc (scratch)");

  auto* cursor = static_cast<std::byte*>(arena_);
  const auto upload = [&](const Tensor& t) {
    std::byte* at = cursor;
    cuda::check(cudaMemcpy(at, t.data<std::byte>(), t.nbytes(), cudaMemcpyHostToDevice), "cudaMemcpy (experts)");
    cursor += aligned(t.nbytes());
    return at;
  };
  const auto matrix = [&](const Tensor& t) {
    cuda::DeviceWeights w;
    w.data = upload(t);
    w.format = cuda::WeightFormat::kBF16;
    w.rows = t.dim(0);
    w.cols = t.dim(1);
    return w;
  };
  experts_.resize(weights.layers.size());
  for (size_t l = 0; l < weights.layers.size(); ++l)
    for (const model::GatedMlp& e : weights.layers[l].moe.experts) {
      Expert d;
      if (e.gated()) d.gate = matrix(e.gate.weight);
      d.up = matrix(e.up.weight);
      d.down = matrix(e.down.weight);
      if (e.up.bias.defined()) d.up_bias = reinterpret_cast<const float*>(upload(e.up.bias));
      experts_[l].push_back(d);
    }
}

DeviceExperts::~DeviceExperts() {
  if (stream_) cudaStreamDestroy(stream_);
  cudaFree(scratch_);
  cudaFree(arena_);
}

void DeviceExperts::run(int layer, const float* x, int64_t hidden, const model::RoutingDecision& routing, float* out) {
  MOE_CHECK(hidden == hidden_, ErrorCode::kInternal, "hidden size {} differs from the experts' {}", hidden, hidden_);
  cuda::check(cudaSetDevice(device_), "cudaSetDevice");
  const auto& experts = experts_.at(size_t(layer));
  float* dx = scratch_;
  float* da = dx + cuda::kMaxGemvTokens * hidden_;
  float* db = da + cuda::kMaxGemvTokens * width_;
  float* dy = db + cuda::kMaxGemvTokens * width_;
  for (const model::ExpertGroup& group : model::group_by_expert(routing)) {
    MOE_CHECK(group.expert >= 0 && size_t(group.expert) < experts.size(), ErrorCode::kInternal,
              "layer {} has no expert {} on the GPU", layer, group.expert);
    const Expert& e = experts[size_t(group.expert)];
    const int64_t width = e.up.rows;
    model::gather_rows(x, hidden, group, rows_);
    const auto m = int64_t(group.tokens.size());
    results_.resize(size_t(m * hidden));
    for (int64_t begin = 0; begin < m; begin += cuda::kMaxGemvTokens) {
      const int n = int(std::min<int64_t>(cuda::kMaxGemvTokens, m - begin));
      cuda::check(cudaMemcpyAsync(dx, rows_.data() + begin * hidden, sizeof(float) * size_t(n * hidden),
                                  cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (rows)");
      if (e.gate.data) {
        cuda::check(cuda::expert_gemv(e.gate, dx, n, da, stream_), "expert_gemv (gate)");
        cuda::check(cuda::expert_gemv(e.up, dx, n, db, stream_), "expert_gemv (up)");
        cuda::check(cuda::silu_mul(da, db, da, n * width, stream_), "silu_mul");
      } else {
        cuda::check(cuda::expert_gemv(e.up, dx, n, da, stream_), "expert_gemv (up)");
        cuda::check(cuda::bias_gelu_tanh(da, e.up_bias, n, width, stream_), "bias_gelu_tanh");
      }
      cuda::check(cuda::expert_gemv(e.down, da, n, dy, stream_), "expert_gemv (down)");
      cuda::check(cudaMemcpyAsync(results_.data() + begin * hidden, dy, sizeof(float) * size_t(n * hidden),
                                  cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (results)");
    }
    cuda::check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    model::scatter_rows(results_.data(), hidden, group, out);
  }
}

}  // namespace moe::offload
