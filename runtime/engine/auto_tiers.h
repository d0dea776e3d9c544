#pragma once
// The split of one memory limit into the engine's tiers, chosen when the user gives no budget
// flags (or only --mem-limit): run in place when the model fits, else keep the dense weights
// resident, give what is left to the devices' expert caches and stream the rest. A mapped model
// that misses the limit by less than one step's experts also runs in place: the page cache then
// keeps the hot experts as well as the slots would, without copying them. On the CPU
// backend a virtual device's slots are host memory, so no host pool is kept beside them (it
// would hold the same bytes twice); under CUDA the GPU holds the cache and the host pool takes
// what the host limit leaves. Pure: the engine measures the inputs, this decides and says why.
#include <cstdint>
#include <string>
#include <vector>

namespace moe::engine {

struct TierInputs {
  uint64_t limit = 0;          // host memory the run may use, page cache of its files included
  std::string limit_source;    // "--mem-limit", "cgroup v1 /x/memory.limit_in_bytes", "MemAvailable"
  bool limit_given = false;    // the user asked for it (a limit that cannot hold the run is then an error)
  uint64_t dense_bytes = 0;    // weights every token reads: attention, norms, embeddings, shared experts, LM head
  uint64_t expert_bytes = 0;   // one routed expert as the executor copies it
  int64_t experts = 0;         // routed experts in all layers
  int64_t streamed_per_layer = 0;  // most experts one layer's step may stream through at once
  int sparse_layers = 0;       // layers with routed experts (a step's experts: streamed_per_layer in each)
  uint64_t kv_bytes = 0;       // the KV cache the run keeps room for
  uint64_t runtime_bytes = 0;  // code, tokenizer, activations: an estimate
  int devices = 1;
  bool from_store = false;     // misses read with O_DIRECT (else from the mapped checkpoint)
  bool cuda = false;
};

struct TierChoice {
  bool offload = false;        // false: the plain run, every weight in place
  uint64_t device_bytes = 0;   // per device: its routed experts (pinned and cache slots)
  uint64_t host_bytes = 0;     // host pool (cuda only)
  uint64_t streaming_bytes = 0;  // kept free for experts streamed through without a slot
  bool read_ahead = false;       // in place but not all in memory: read the chosen experts ahead
  std::vector<std::string> why;  // sentences, for --explain
};

// Throws moe::Error(kOutOfMemory) with the numbers when a given limit leaves no room for one
// expert per device beside the dense weights, KV cache and runtime.
TierChoice choose_tiers(const TierInputs& in);

// The runtime estimate: what the process holds before its weights are read (`baseline`: the
// anonymous pages of its libraries and tokenizer when the engine starts, and code pages),
// plus the activations of `step_tokens` tokens of `hidden` (a few dozen rows of hidden and
// intermediate floats each) and their attention scores over `context` positions.
uint64_t runtime_estimate(uint64_t baseline, int64_t step_tokens, int64_t hidden, int64_t intermediate, int64_t heads,
                          int64_t context);

}  // namespace moe::engine
