#pragma once
// The KV memory many sequences share: fixed-size blocks of `block_tokens` tokens, each holding
// every layer's keys and values for those tokens. A sequence's KvCache takes blocks as it grows
// and gives them back when it ends, so memory follows the tokens actually held, not each
// sequence's maximum (vLLM's paged attention). Storage per layer is [num_blocks, block_tokens,
// row] for keys and again for values, so blocks with consecutive ids are consecutive rows and
// the attention kernel reads a run of them as one. A pool without values (multi-head latent
// attention, whose latent row serves as both) stores keys only, and values() are the keys.
#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace moe::model {

class KvBlockPool {
 public:
  KvBlockPool(int num_layers, int64_t row_floats, int64_t block_tokens, int64_t num_blocks, bool with_values = true);
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  // Blocks of `block_tokens` that `bytes` holds for a model of `num_layers` layers and rows of
  // `row_floats` (f32 keys and values, or keys only); at least one.
  static int64_t blocks_within(uint64_t bytes, int num_layers, int64_t row_floats, int64_t block_tokens,
                               bool with_values = true);
  // Bytes one token takes in every layer (keys and values): the theoretical KV size per token.
  static uint64_t token_bytes(int num_layers, int64_t row_floats, bool with_values = true) {
    return block_bytes(num_layers, row_floats, 1, with_values);
  }
  // Bytes one block takes: every layer's keys and values for block_tokens tokens.
  static uint64_t block_bytes(int num_layers, int64_t row_floats, int64_t block_tokens, bool with_values = true);

  int num_layers() const { return num_layers_; }
  int64_t row_size() const { return row_; }  // floats per token per layer (keys or values)
  int64_t block_tokens() const { return block_tokens_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t free_blocks() const { return int64_t(free_.size()); }
  int64_t used_blocks() const { return num_blocks_ - free_blocks(); }
  bool with_values() const { return with_values_; }
  uint64_t block_bytes() const { return block_bytes(num_layers_, row_, block_tokens_, with_values_); }
  uint64_t nbytes() const { return uint64_t(num_blocks_) * block_bytes(); }

  // The lowest free block (so a sequence growing alone gets consecutive ones), or none.
  std::optional<int32_t> allocate();
  void release(int32_t block);

  // Layer `layer`'s key (value) rows; block b's token i is row b * block_tokens + i.
  float* keys(int layer) { return keys_[size_t(layer)].data(); }
  float* values(int layer) { return with_values_ ? values_[size_t(layer)].data() : keys(layer); }
  const float* keys(int layer) const { return keys_[size_t(layer)].data(); }
  const float* values(int layer) const { return with_values_ ? values_[size_t(layer)].data() : keys(layer); }

 private:
  int num_layers_;
  int64_t row_, block_tokens_, num_blocks_;
  bool with_values_;
  std::priority_queue<int32_t, std::vector<int32_t>, std::greater<>> free_;
  std::vector<bool> in_use_;
  std::vector<std::vector<float>> keys_, values_;
};

}  // namespace moe::model
