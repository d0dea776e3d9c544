#include "offload/gpu/cuda_expert_device.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/fp8.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/grouped_gemm.h"
#include "kernels/cuda/ops.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

constexpr uint64_t kAlign = 256;  // the streamed expert's matrices within its buffer
uint64_t aligned(uint64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

uint64_t data_bytes(const cpu::WeightMatrix& m) { return dtype_bytes(m.dtype, size_t(m.rows * m.cols)); }
// int8/int4 group scales, or an fp8 matrix's block grid (a layout's views: its own grid, no offsets).
uint64_t scale_bytes(const cpu::WeightMatrix& m) {
  if (m.block_scales) return sizeof(float) * uint64_t(cpu::fp8_blocks(m.rows, m.block_rows)) * uint64_t(m.block_stride);
  return m.scales ? sizeof(float) * uint64_t(m.rows) * uint64_t(m.cols / m.group_size) : 0;
}

}  // namespace

// Copies on the device's copy stream through a ring of kStagingDepth slots: a slot is reused once
// its previous copy has left (its event), so at most the ring's depth is in flight and a
// cancelled fill stops within a few MiB. Pinned sources are copied from where they are.
class CudaExpertDevice::CopyUpload final : public ExpertDevice::Upload {
 public:
  CopyUpload(CudaExpertDevice& device, std::byte* dst) : d_(device), dst_(dst) {
    cuda::check(cudaSetDevice(d_.id_), "cudaSetDevice");
  }
  ~CopyUpload() override {
    if (!finished_) cudaStreamSynchronize(d_.copy_.get());  // a slot is never reused under a copy
  }
  void write(uint64_t offset, const std::byte* src, uint64_t bytes) override {
    cudaPointerAttributes attributes{};
    const bool pinned = cudaPointerGetAttributes(&attributes, src) == cudaSuccess && attributes.type == cudaMemoryTypeHost;
    cudaGetLastError();  // pageable memory may leave an error behind on older drivers
    for (uint64_t done = 0; done < bytes;) {
      const uint64_t n = std::min(kStagingBytes, bytes - done);
      d_.staged_[size_t(slot_)]->synchronize();
      const std::byte* from = src + done;
      if (!pinned) {
        std::memcpy(d_.staging_[size_t(slot_)].get(), from, n);
        from = d_.staging_[size_t(slot_)].get();
      }
      cuda::check(cudaMemcpyAsync(dst_ + offset + done, from, n, cudaMemcpyHostToDevice, d_.copy_.get()),
                  "cudaMemcpyAsync (expert)");
      d_.staged_[size_t(slot_)]->record(d_.copy_.get());
      slot_ = (slot_ + 1) % kStagingDepth;
      done += n;
    }
  }
  void finish() override {
    d_.copy_.synchronize();
    finished_ = true;
  }

 private:
  CudaExpertDevice& d_;
  std::byte* dst_;
  int slot_ = 0;
  bool finished_ = false;
};

CudaExpertDevice::CudaExpertDevice(cuda::DeviceArena& arena, const ExpertLayout& layout)
    : arena_(arena), id_(cuda::select_device(arena.device())), hidden_(layout.up.cols), width_(layout.up.rows) {
  MOE_CHECK(layout.swiglu_limit == 0 && layout.down_bias.bytes == 0, ErrorCode::kUnsupported,
            "the CUDA backend does not compute gpt-oss's experts (fused gate_up, clamped SwiGLU, biases) yet; offload them on "
            "--backend cpu");
  for (const MatrixPlacement* p : {&layout.gate, &layout.up, &layout.down}) {
    MOE_CHECK(p->bytes == 0 || p->dtype == DType::kBF16 || p->dtype == DType::kI8 || p->dtype == DType::kI4 ||
                  p->dtype == DType::kF8E4M3,
              ErrorCode::kUnsupported, "the CUDA backend computes bf16, int8, int4 and fp8 experts; this model's experts are {}",
              dtype_name(p->dtype));
    // The kernels read 16 fp8 values at a time under one block scale (the releases' blocks are 128 x 128).
    MOE_CHECK(p->bytes == 0 || p->dtype != DType::kF8E4M3 || p->block_cols % 16 == 0, ErrorCode::kUnsupported,
              "the CUDA expert kernels need fp8 blocks of a multiple of 16 columns, not {}x{}", p->block_rows, p->block_cols);
  }
  // The kernels unpack 16 int8 or 32 int4 values at a time, each run under one scale.
  if (layout.up_scales.bytes && layout.up.dtype != DType::kF8E4M3) {
    const int64_t group = layout.up.cols / layout.up_scales.cols, unit = layout.up.dtype == DType::kI8 ? 16 : 32;
    MOE_CHECK(group % unit == 0, ErrorCode::kUnsupported, "the CUDA expert kernels need {} groups of a multiple of {} columns, not {}",
              dtype_name(layout.up.dtype), unit, group);
  }
  // Rows are whole 16-byte loads: 8 bf16 values, 16 fp8 ones.
  const int64_t unit = layout.up.dtype == DType::kF8E4M3 ? 16 : 8;
  MOE_CHECK(hidden_ % unit == 0 && width_ % unit == 0, ErrorCode::kUnsupported,
            "the CUDA expert kernels need {} hidden and expert widths that are multiples of {}, not {} and {}",
            dtype_name(layout.up.dtype), unit, hidden_, width_);
  for (int i = 0; i < kStagingDepth; ++i) {
    staging_[size_t(i)].ensure(kStagingBytes);
    staged_[size_t(i)] = std::make_unique<cuda::Event>();
  }
}

CudaExpertDevice::~CudaExpertDevice() {
  cudaSetDevice(id_);
  cudaStreamSynchronize(copy_.get());
  cudaStreamSynchronize(compute_.get());
}

std::string CudaExpertDevice::name() const { return "cuda:" + std::to_string(id_) + " " + cuda::describe_device(id_); }

std::byte* CudaExpertDevice::allocate(uint64_t bytes) {
  blocks_.push_back(arena_.allocate(bytes, "the expert cache"));
  return blocks_.back().get();
}

std::unique_ptr<ExpertDevice::Upload> CudaExpertDevice::begin_upload(std::byte* dst) {
  return std::make_unique<CopyUpload>(*this, dst);
}

void CudaExpertDevice::run_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) {
  const ExpertRun run{w, x, m, out};
  run_experts(std::span(&run, 1));
}

// The runs' rows go in passes of at most kRowsPerPass (an expert's rows may straddle passes), one
// copy in and one out per pass; each projection of a pass is one grouped GEMM launch over the
// experts with kGemmMinRows rows or more, and GEMVs for the others. Which path an expert takes
// follows its whole row count, never the pass, so its tokens' bits do not depend on the batch.
void CudaExpertDevice::run_experts(std::span<const ExpertRun> runs) {
  cuda::check(cudaSetDevice(id_), "cudaSetDevice");
  std::vector<int64_t> rows;
  for (const ExpertRun& r : runs) {
    MOE_CHECK(r.w.up.cols == hidden_ && r.w.width() == width_, ErrorCode::kInternal, "an expert's shape differs from the device's");
    MOE_CHECK(!r.w.gated() || r.w.act == cpu::Activation::kSilu, ErrorCode::kUnsupported,
              "the GPU expert kernels compute SwiGLU only: gated experts of another activation run on --backend cpu");
    rows.push_back(r.m);
  }
  for (const std::vector<RunPiece>& pass : split_into_passes(rows, kRowsPerPass)) compute_pass(runs, pass);
}

void CudaExpertDevice::compute_pass(std::span<const ExpertRun> runs, const std::vector<RunPiece>& pass) {
  const int64_t rows = pass.back().offset + pass.back().rows;
  const uint64_t row_floats = uint64_t(2 * hidden_ + 2 * width_);
  activations_.ensure(sizeof(float) * row_floats * uint64_t(kRowsPerPass));  // the last pass synchronised
  rows_in_.ensure(sizeof(float) * uint64_t(kRowsPerPass * hidden_));
  rows_out_.ensure(sizeof(float) * uint64_t(kRowsPerPass * hidden_));
  float* dx = activations_.get<float>();
  float* da = dx + kRowsPerPass * hidden_;
  float* db = da + kRowsPerPass * width_;
  float* dy = db + kRowsPerPass * width_;
  const cudaStream_t s = compute_.get();
  for (const RunPiece& p : pass)
    std::memcpy(rows_in_.get<float>() + p.offset * hidden_, runs[p.run].x + p.begin * hidden_,
                sizeof(float) * size_t(p.rows * hidden_));
  cuda::check(cudaMemcpyAsync(dx, rows_in_.get(), sizeof(float) * size_t(rows * hidden_), cudaMemcpyHostToDevice, s),
              "cudaMemcpyAsync (rows)");

  // gate and up (or up alone), the activation, then down; `a` holds the activation's output.
  std::vector<cuda::GemmProblem> grouped;
  const auto project = [&](const cpu::WeightMatrix& w, const RunPiece& p, const float* x, float* y) {
    if (runs[p.run].m >= kGemmMinRows) grouped.push_back({cuda::device_weights(w), x, y, p.rows});
    else cuda::check(cuda::expert_gemv_rows(cuda::device_weights(w), x, p.rows, y, s), "expert_gemv");
  };
  const auto launch_grouped = [&] {
    cuda::check(cuda::grouped_expert_gemm(grouped.data(), int(grouped.size()), s), "grouped_expert_gemm");
    grouped.clear();
  };
  bool all_gated = true;
  for (const RunPiece& p : pass) {
    const model::GatedMlpMatrices& w = runs[p.run].w;
    all_gated = all_gated && w.gated();
    if (w.gated()) project(w.gate, p, dx + p.offset * hidden_, da + p.offset * width_);
    project(w.up, p, dx + p.offset * hidden_, (w.gated() ? db : da) + p.offset * width_);
  }
  launch_grouped();
  if (all_gated) {
    cuda::check(cuda::silu_mul(da, db, da, rows * width_, s), "silu_mul");
  } else {
    for (const RunPiece& p : pass) {
      float* a = da + p.offset * width_;
      if (runs[p.run].w.gated()) cuda::check(cuda::silu_mul(a, db + p.offset * width_, a, p.rows * width_, s), "silu_mul");
      else cuda::check(cuda::bias_gelu_tanh(a, runs[p.run].w.up_bias, p.rows, width_, s), "bias_gelu_tanh");
    }
  }
  for (const RunPiece& p : pass) project(runs[p.run].w.down, p, da + p.offset * width_, dy + p.offset * hidden_);
  launch_grouped();

  cuda::check(cudaMemcpyAsync(rows_out_.get(), dy, sizeof(float) * size_t(rows * hidden_), cudaMemcpyDeviceToHost, s),
              "cudaMemcpyAsync (results)");
  compute_.synchronize();
  for (const RunPiece& p : pass)
    std::memcpy(runs[p.run].out + p.begin * hidden_, rows_out_.get<float>() + p.offset * hidden_,
                sizeof(float) * size_t(p.rows * hidden_));
}

void CudaExpertDevice::run_host_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) {
  cuda::check(cudaSetDevice(id_), "cudaSetDevice");
  // The matrices' data, scales and bias, each 256-byte aligned in one device buffer.
  const cpu::WeightMatrix* mats[3] = {&w.gate, &w.up, &w.down};
  uint64_t total = w.up_bias ? aligned(sizeof(float) * uint64_t(w.width())) : 0;
  for (const auto* mat : mats)
    if (mat->data) total += aligned(data_bytes(*mat)) + aligned(scale_bytes(*mat));
  if (host_expert_.bytes() < total) {
    compute_.synchronize();
    host_expert_.ensure(total);
  }
  std::byte* cursor = host_expert_.get();
  const auto upload = [&](const void* src, uint64_t bytes) {
    std::byte* at = cursor;
    cuda::check(cudaMemcpyAsync(at, src, bytes, cudaMemcpyHostToDevice, compute_.get()), "cudaMemcpyAsync (streamed expert)");
    cursor += aligned(bytes);
    return at;
  };
  model::GatedMlpMatrices d = w;
  cpu::WeightMatrix* dmats[3] = {&d.gate, &d.up, &d.down};
  for (int i = 0; i < 3; ++i) {
    if (!mats[i]->data) continue;
    dmats[i]->data = upload(mats[i]->data, data_bytes(*mats[i]));
    if (mats[i]->scales) dmats[i]->scales = reinterpret_cast<const float*>(upload(mats[i]->scales, scale_bytes(*mats[i])));
    if (mats[i]->block_scales)
      dmats[i]->block_scales = reinterpret_cast<const float*>(upload(mats[i]->block_scales, scale_bytes(*mats[i])));
  }
  if (w.up_bias) d.up_bias = reinterpret_cast<const float*>(upload(w.up_bias, sizeof(float) * uint64_t(w.width())));
  run_expert(d, x, m, out);  // synchronises before returning, so the sources may go
}

ExpertDeviceFactory cuda_expert_devices(std::vector<cuda::DeviceArena*> arenas) {
  return [arenas = std::move(arenas)](int index, const ExpertLayout& layout) {
    MOE_CHECK(index >= 0 && size_t(index) < arenas.size(), ErrorCode::kInvalidArgument, "expert-parallel rank {} has no GPU arena",
              index);
    return std::make_unique<CudaExpertDevice>(*arenas[size_t(index)], layout);
  };
}

}  // namespace moe::offload
