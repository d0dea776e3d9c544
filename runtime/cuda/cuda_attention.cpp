#include "runtime/cuda/cuda_attention.h"

#include <algorithm>

#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/device.h"
#include "runtime/core/error.h"

namespace moe::cuda {

CudaAttention::CudaAttention(DeviceArena& arena) : arena_(arena), device_(select_device(arena.device())) {
  int bytes = 0;
  check(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_), "cudaDeviceGetAttribute");
  max_shared_ = uint64_t(bytes);
}

CudaAttention::~CudaAttention() {
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_.get());
}

void CudaAttention::attend(model::KvCache& cache, const model::AttentionStep& s, float* out) {
  check(cudaSetDevice(device_), "cudaSetDevice");
  MOE_CHECK(cache.row_size() == s.n_kv_heads * s.head_dim, ErrorCode::kInternal, "a KV cache row of {} floats for {} heads of {}",
            cache.row_size(), s.n_kv_heads, s.head_dim);
  MOE_CHECK(s.layer >= 0 && s.layer < cache.num_layers(), ErrorCode::kInternal, "layer {} of a {}-layer cache", s.layer,
            cache.num_layers());
  if (cache.generation() != generation_ || cache.capacity() != capacity_ || cache.row_size() != row_ ||
      int(valid_.size()) != cache.num_layers()) {
    // Another cache (or a first one): mirror it afresh, rows uploaded as steps need them.
    generation_ = cache.generation();
    capacity_ = cache.capacity();
    row_ = cache.row_size();
    valid_.assign(size_t(cache.num_layers()), 0);
    mirror_.reset();  // the old mirror's last step synchronised
    const uint64_t floats = uint64_t(cache.num_layers()) * uint64_t(capacity_) * uint64_t(row_);
    if (auto block = arena_.try_allocate(2 * sizeof(float) * floats)) mirror_ = std::move(*block);
  }
  if (!mirror_ || !cache.contiguous()) {  // no room in the arena for this cache, or a paged one
    ++cpu_fallbacks_;
    cpu::attention(s.q, cache.blocks(s.layer), s.n, s.start, s.n_heads, s.n_kv_heads, s.head_dim, s.scale, out,
                   s.sliding_window, s.head_mask);
    return;
  }
  const cudaStream_t st = stream_.get();
  const uint64_t layer_floats = uint64_t(capacity_) * uint64_t(row_);
  float* k = mirror_.get<float>() + uint64_t(s.layer) * layer_floats;
  float* v = mirror_.get<float>() + uint64_t(cache.num_layers()) * layer_floats + uint64_t(s.layer) * layer_floats;
  int64_t& valid = valid_[size_t(s.layer)];
  if (s.start == 0) valid = 0;  // a new sequence in this cache
  // The rows the mirror lacks, up to and including this step's (the transformer wrote them).
  const int64_t from = std::min(valid, s.start), to = s.start + s.n;
  if (to > from) {
    const size_t offset = size_t(from * row_), bytes = sizeof(float) * size_t((to - from) * row_);
    check(cudaMemcpyAsync(k + offset, cache.keys(s.layer) + offset, bytes, cudaMemcpyHostToDevice, st), "cudaMemcpyAsync (keys)");
    check(cudaMemcpyAsync(v + offset, cache.values(s.layer) + offset, bytes, cudaMemcpyHostToDevice, st),
          "cudaMemcpyAsync (values)");
  }
  valid = to;

  const uint64_t q_bytes = sizeof(float) * uint64_t(s.n * s.n_heads * s.head_dim);
  q_.ensure(q_bytes);  // every call ends synchronised
  out_.ensure(q_bytes);
  check(cudaMemcpyAsync(q_.get(), s.q, q_bytes, cudaMemcpyHostToDevice, st), "cudaMemcpyAsync (q)");
  const uint8_t* mask = nullptr;
  if (s.head_mask) {
    const uint64_t mask_bytes = uint64_t(s.n * s.n_heads);
    mask_.ensure(mask_bytes);
    check(cudaMemcpyAsync(mask_.get(), s.head_mask, mask_bytes, cudaMemcpyHostToDevice, st), "cudaMemcpyAsync (head mask)");
    mask = mask_.get<uint8_t>();
  }
  const int64_t keys = s.start + s.n;
  const bool one_block_fits = attention_shared_bytes(keys) <= max_shared_;
  if (keys > kSplitFrom && (s.n <= kSplitQueries || !one_block_fits)) {
    // Decode and short chunks, parallel over the keys; longer chunks kSplitQueries at a time.
    const int64_t chunk = std::min(s.n, kSplitQueries), width = s.n_heads * s.head_dim;
    const int64_t floats = attention_split_workspace(chunk, s.start + s.n - chunk, s.n_heads, s.head_dim, kSplitKeys);
    workspace_.ensure(sizeof(float) * uint64_t(floats));  // the largest chunk's: the last
    for (int64_t c = 0; c < s.n; c += chunk) {
      const int64_t n = std::min(chunk, s.n - c);  // chunks run in stream order, so one workspace serves
      check(attention_split(q_.get<float>() + c * width, k, v, n, s.start + c, s.n_heads, s.n_kv_heads, s.head_dim, s.scale,
                            out_.get<float>() + c * width, kSplitKeys, workspace_.get<float>(), st, s.sliding_window,
                            mask ? mask + c * s.n_heads : nullptr),
            "attention_split");
    }
  } else {
    check(attention(q_.get<float>(), k, v, s.n, s.start, s.n_heads, s.n_kv_heads, s.head_dim, s.scale, out_.get<float>(), st,
                    s.sliding_window, mask),
          "attention");
  }
  check(cudaMemcpyAsync(out, out_.get(), q_bytes, cudaMemcpyDeviceToHost, st), "cudaMemcpyAsync (heads)");
  stream_.synchronize();
}

}  // namespace moe::cuda
