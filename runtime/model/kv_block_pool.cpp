#include "runtime/model/kv_block_pool.h"

#include <limits>

#include "runtime/core/error.h"

namespace moe::model {

KvBlockPool::KvBlockPool(int num_layers, int64_t row_floats, int64_t block_tokens, int64_t num_blocks, bool with_values)
    : num_layers_(num_layers), row_(row_floats), block_tokens_(block_tokens), num_blocks_(num_blocks), with_values_(with_values) {
  MOE_CHECK(num_layers > 0 && row_floats > 0, ErrorCode::kInvalidArgument, "a KV pool needs layers and rows");
  MOE_CHECK(block_tokens > 0 && num_blocks > 0, ErrorCode::kInvalidArgument,
            "a KV pool needs at least one block of at least one token");
  MOE_CHECK(num_blocks <= std::numeric_limits<int32_t>::max(), ErrorCode::kInvalidArgument, "{} KV blocks are too many",
            num_blocks);
  const uint64_t floats = uint64_t(num_blocks) * uint64_t(block_tokens) * uint64_t(row_floats);
  keys_.resize(size_t(num_layers));
  values_.resize(with_values ? size_t(num_layers) : 0);
  for (int l = 0; l < num_layers; ++l) {
    keys_[size_t(l)].assign(floats, 0.0f);
    if (with_values) values_[size_t(l)].assign(floats, 0.0f);
  }
  in_use_.assign(size_t(num_blocks), false);
  for (int64_t b = 0; b < num_blocks; ++b) free_.push(int32_t(b));
}

uint64_t KvBlockPool::block_bytes(int num_layers, int64_t row_floats, int64_t block_tokens, bool with_values) {
  return (with_values ? 2 : 1) * uint64_t(num_layers) * uint64_t(row_floats) * uint64_t(block_tokens) * sizeof(float);
}

int64_t KvBlockPool::blocks_within(uint64_t bytes, int num_layers, int64_t row_floats, int64_t block_tokens,
                                   bool with_values) {
  const uint64_t each = block_bytes(num_layers, row_floats, block_tokens, with_values);
  MOE_CHECK(each > 0 && bytes >= each, ErrorCode::kOutOfMemory,
            "a KV budget of {} bytes holds no block of {} tokens ({} bytes)", bytes, block_tokens, each);
  return int64_t(std::min<uint64_t>(bytes / each, uint64_t(std::numeric_limits<int32_t>::max())));
}

std::optional<int32_t> KvBlockPool::allocate() {
  if (free_.empty()) return std::nullopt;
  const int32_t block = free_.top();
  free_.pop();
  in_use_[size_t(block)] = true;
  return block;
}

void KvBlockPool::release(int32_t block) {
  MOE_CHECK(block >= 0 && block < num_blocks_ && in_use_[size_t(block)], ErrorCode::kInternal,
            "KV block {} released but not in use", block);
  in_use_[size_t(block)] = false;
  free_.push(block);
}

}  // namespace moe::model
