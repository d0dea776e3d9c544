#include "runtime/cuda/cuda_attention.h"

#include <algorithm>
#include <span>

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

CudaAttention::Mirrored& CudaAttention::mirrored(const model::KvCache& cache) {
  if (const auto it = caches_.find(cache.generation()); it != caches_.end()) return it->second;
  // A cache cleared or destroyed leaves its generation's counts behind for good: once there are
  // enough, drop those no step has attended since the last sweep. A live cache dropped (idle all
  // that while) only uploads its rows again.
  if (caches_.size() >= sweep_at_) {
    std::erase_if(caches_, [&](const auto& entry) { return entry.second.used < swept_; });
    swept_ = tick_;
    sweep_at_ = std::max(kSweepFrom, 2 * caches_.size());
  }
  Mirrored& m = caches_[cache.generation()];
  m.valid.assign(size_t(layers_), 0);
  return m;
}

void CudaAttention::attend(model::KvCache& cache, const model::AttentionStep& s, float* out) {
  check(cudaSetDevice(device_), "cudaSetDevice");
  MOE_CHECK(cache.row_size() == s.n_kv_heads * s.head_dim, ErrorCode::kInternal, "a KV cache row of {} floats for {} heads of {}",
            cache.row_size(), s.n_kv_heads, s.head_dim);
  MOE_CHECK(s.layer >= 0 && s.layer < cache.num_layers(), ErrorCode::kInternal, "layer {} of a {}-layer cache", s.layer,
            cache.num_layers());
  ++tick_;
  const model::KvBlockPool& pool = cache.pool();
  if (&pool != pool_ || pool.num_layers() != layers_ || pool.row_size() != row_ || pool.block_tokens() != block_tokens_ ||
      pool.num_blocks() != blocks_) {
    // Another pool (or a first one): mirror it afresh, rows uploaded as steps need them.
    pool_ = &pool;
    layers_ = pool.num_layers();
    row_ = pool.row_size();
    block_tokens_ = pool.block_tokens();
    blocks_ = pool.num_blocks();
    caches_.clear();
    swept_ = tick_;
    sweep_at_ = kSweepFrom;
    mirror_.reset();  // the old mirror's last step synchronised
    const uint64_t floats = uint64_t(layers_) * uint64_t(blocks_) * uint64_t(block_tokens_) * uint64_t(row_);
    if (auto block = arena_.try_allocate(2 * sizeof(float) * floats)) mirror_ = std::move(*block);
  }
  // A contiguous cache's token j is row j (no table to read); a paged one's rows follow its table.
  const bool paged = !cache.contiguous();
  const std::span<const int32_t> table = cache.block_table();
  const int64_t keys = s.start + s.n;
  // Rows of its blocks (a private cache written without reserving: its pool's one block).
  const int64_t held = table.empty() ? blocks_ * block_tokens_ : int64_t(table.size()) * block_tokens_;
  MOE_CHECK(keys <= held, ErrorCode::kInternal, "attention over {} keys of a KV cache with room for {}", keys, held);
  if (!mirror_) {  // no room in the arena for this pool
    ++cpu_fallbacks_;
    cpu::attention(s.q, cache.blocks(s.layer), s.n, s.start, s.n_heads, s.n_kv_heads, s.head_dim, s.scale, out,
                   s.sliding_window, s.head_mask);
    return;
  }
  const cudaStream_t st = stream_.get();
  const uint64_t layer_floats = uint64_t(blocks_) * uint64_t(block_tokens_) * uint64_t(row_);
  float* k = mirror_.get<float>() + uint64_t(s.layer) * layer_floats;
  float* v = mirror_.get<float>() + uint64_t(layers_) * layer_floats + uint64_t(s.layer) * layer_floats;
  // Valid rows are counted per cache generation, never per block: a block freed and taken by
  // another sequence holds the old sequence's rows on the device, but the new cache's count
  // starts at 0, so its rows are uploaded over them before any step reads them.
  Mirrored& rows = mirrored(cache);
  rows.used = tick_;
  int64_t& valid = rows.valid[size_t(s.layer)];
  if (s.start == 0) valid = 0;  // a new sequence in this cache
  // The rows the mirror lacks, up to and including this step's (the transformer wrote them), one
  // copy per run of consecutive physical rows (a run of consecutive blocks of a paged cache).
  const float* host_k = pool.keys(s.layer);
  const float* host_v = pool.values(s.layer);
  const auto upload = [&](int64_t row, int64_t count) {
    const size_t offset = size_t(row * row_), bytes = sizeof(float) * size_t(count * row_);
    check(cudaMemcpyAsync(k + offset, host_k + offset, bytes, cudaMemcpyHostToDevice, st), "cudaMemcpyAsync (keys)");
    check(cudaMemcpyAsync(v + offset, host_v + offset, bytes, cudaMemcpyHostToDevice, st), "cudaMemcpyAsync (values)");
  };
  const int64_t from = std::min(valid, s.start), to = keys;
  if (!paged && to > from) upload(from, to - from);
  for (int64_t j = from; paged && j < to;) {
    size_t b = size_t(j / block_tokens_);
    const int64_t row = int64_t(table[b]) * block_tokens_ + j % block_tokens_;
    int64_t length = block_tokens_ - j % block_tokens_;
    for (; j + length < to && table[b + 1] == table[b] + 1; ++b) length += block_tokens_;
    length = std::min(length, to - j);
    upload(row, length);
    j += length;
  }
  valid = to;

  const int32_t* block_table = nullptr;
  if (paged) {
    // Under one generation a table only grows (clear() and copies take new generations), so the
    // same generation and size is the table already uploaded.
    if (cache.generation() != table_generation_ || table.size() != table_size_) {
      table_generation_ = 0;  // until the new one is there: ensure() may drop the old
      table_.ensure(sizeof(int32_t) * table.size());  // every call ends synchronised
      check(cudaMemcpyAsync(table_.get(), table.data(), sizeof(int32_t) * table.size(), cudaMemcpyHostToDevice, st),
            "cudaMemcpyAsync (block table)");
      table_generation_ = cache.generation();
      table_size_ = table.size();
    }
    block_table = table_.get<int32_t>();
  }

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
                            mask ? mask + c * s.n_heads : nullptr, block_table, block_tokens_),
            "attention_split");
    }
  } else {
    check(attention(q_.get<float>(), k, v, s.n, s.start, s.n_heads, s.n_kv_heads, s.head_dim, s.scale, out_.get<float>(), st,
                    s.sliding_window, mask, block_table, block_tokens_),
          "attention");
  }
  check(cudaMemcpyAsync(out, out_.get(), q_bytes, cudaMemcpyDeviceToHost, st), "cudaMemcpyAsync (heads)");
  stream_.synchronize();
}

}  // namespace moe::cuda
