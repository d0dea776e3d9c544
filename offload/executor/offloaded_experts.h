#pragma once
// The offloading executor's expert runner: routed experts live in tiers (virtual device memory
// with pinned experts and a cache, a host pool, the mapped weights standing in for NVMe) within
// budgets, and each MoE layer computes the experts already on a device while the missing ones
// arrive through the copy threads. A predictor starts copies for later layers early. With
// several virtual devices, experts are sharded (and hot ones replicated) by a plan, and tokens
// travel to the devices holding their experts through a Communicator.
//
// For the lossless miss policies (wait, cpu) every expert is computed from the checkpoint's exact
// bytes by the same kernels, so tokens and logits are bit-identical to the resident run at any
// budget, device count, plan or predictor. A backend (ExpertDevice) decides where the slots are
// and which kernels run: on CUDA devices every budget gives the same bits as every other, and
// agrees with the CPU to rounding (miss cpu mixes the two, so it agrees to rounding only).
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "offload/cache/expert_cache.h"
#include "offload/executor/communicator.h"
#include "offload/executor/expert_backing.h"
#include "offload/executor/expert_device.h"
#include "offload/executor/host_tier.h"
#include "offload/executor/predictor.h"
#include "offload/executor/transfer_engine.h"
#include "placement/plan/plan_io.h"
#include "runtime/model/expert_runner.h"
#include "runtime/model/transformer.h"

namespace moe::offload {

struct OffloadOptions {
  uint64_t device_bytes = 0;  // per virtual device, for routed experts (pinned + cache slots)
  uint64_t host_bytes = 0;    // host pool for expert copies
  int devices = 1;
  std::string policy = "lru";  // lru, lfu, multi
  // frequency: a full cache takes a missed expert only when it is used more often than the
  // policy's victim, so fewer slots than a step's experts hold a stable set instead of cycling
  // (admission_filter.h); all: every miss is cached.
  std::string admission = "frequency";
  // wait: copy the expert to the device and wait; cpu: compute it on the host from the host
  // copy (Fiddler); hobbit: by its importance to its tokens (expert_importance.h: the normalised
  // gate weight of it and the experts ranked below it), wait (>= t1), use a low-precision copy
  // (>= t2: the store's int4/int8 blob, read instead of the full one, or without one an int8
  // copy made on the host) or skip the expert (< t2). hobbit is lossy and never the default.
  std::string miss = "wait";
  // Under a memory limit (the automatic tiers): a copy read from a mapped checkpoint releases
  // its pages at once instead of leaving them in the page cache (host_tier.h).
  bool release_read_pages = false;
  double hobbit_t1 = 0.5, hobbit_t2 = 0.1;
  const placement::PlacementPlan* plan = nullptr;  // experts' homes, replicas and devices
  std::shared_ptr<const ExpertStore> store;  // when set, missing experts are read from it (NVMe)
  ExpertDeviceFactory make_device;  // the devices' backend; CPU virtual devices when empty
  // The all-to-all among the devices (NCCL for GPUs); in-process when empty.
  std::function<std::unique_ptr<Communicator>(int devices)> make_communicator;
  // Several processes (mpirun): `devices` counts every rank's devices, rank r owning
  // `local_devices` of them from r * local_devices. This process builds slots, pins and host
  // copies for its own devices only and computes their tasks; the other ranks' results arrive
  // through `ranks`, one exchange per MoE layer. Null: one process owning every device.
  std::shared_ptr<RankCommunicator> ranks;
  int local_devices = 0;  // with `ranks`: devices per rank
};

struct OffloadStats {
  uint64_t uses = 0, pinned_hits = 0, cache_hits = 0, host_hits = 0, nvme_reads = 0;
  uint64_t cpu_computed = 0, low_precision = 0, skipped = 0, bypassed = 0;
  uint64_t bytes_nvme_to_host = 0, bytes_host_to_device = 0, bytes_between_devices = 0;
  double stall_seconds = 0;
  uint64_t prefetches = 0, prefetches_used = 0, prefetches_cancelled = 0;
  uint64_t offloaded_uses = 0, offloaded_uses_prefetched = 0;
  uint64_t late_hits = 0;  // a prefetch still in flight when used: it waited (a stall), not a hit
  // Under mpirun: this rank's share of the uses above (its own devices' tasks), and its exchanges
  // of results with the other ranks.
  uint64_t bytes_between_ranks = 0, rank_exchanges = 0;
  double rank_exchange_seconds = 0;    // the executor's whole exchange: packing, the collective, unpacking
  double rank_collective_seconds = 0;  // the collective's call alone (waiting for the slowest rank included)
  double precision() const { return prefetches ? double(prefetches_used) / double(prefetches) : 0; }
  double recall() const { return offloaded_uses ? double(offloaded_uses_prefetched) / double(offloaded_uses) : 0; }
};

class OffloadedExperts final : public model::ExpertRunner {
 public:
  // Throws moe::Error(kOutOfMemory) with the numbers when a budget cannot hold what it must
  // (one expert per device; the plan's pinned and host-homed experts).
  OffloadedExperts(const model::Transformer& transformer, OffloadOptions options, std::unique_ptr<Predictor> predictor = {});
  ~OffloadedExperts() override;

  void run(int layer, const float* x, int64_t hidden, const model::RoutingDecision& routing, float* out) override;
  OffloadStats stats() const;
  int cache_slots(int device) const;  // a device of this process
  int first_device() const { return first_device_; }  // this process's first device
  int devices() const { return options_.devices; }     // every rank's
  RankCommunicator* ranks() const { return options_.ranks.get(); }
  uint64_t expert_bytes() const { return backing_.layout().bytes; }
  std::string expert_format() const { return backing_.format(); }  // "bf16", "int8:g32"
  bool experts_from_store() const { return backing_.from_store(); }

 private:
  struct Device;
  struct Task;
  // A streamed or host-computed expert's bytes: read in place in the host pool where it is held
  // there (a lease), else copied.
  struct Staged {
    HostTier::Lease lease;
    std::vector<std::byte> copy;
    const std::byte* data = nullptr;  // once its task's `staged` future is ready
  };
  int device_of(ExpertKey key, std::vector<int64_t>* load) const;
  void compute(const Task& task, const float* rows, int64_t m, int64_t hidden, float* results);
  void dispatch(const std::vector<Task>& tasks, const float* x, int64_t hidden, std::vector<std::vector<float>>& rows);
  void combine(const std::vector<Task>& tasks, const std::vector<std::vector<float>>& results, int64_t hidden, float* out);
  void exchange_with_ranks(const std::vector<Task>& tasks, const std::vector<std::vector<float>>& results, int64_t hidden,
                           float* out);
  bool owns(int device) const { return device >= first_device_ && device < first_device_ + local_devices_; }
  void fetch_bypass(ExpertKey key, std::vector<std::byte>& buffer);
  void fetch_into(ExpertKey key, std::byte* dst);  // from the host tier, counting where it came from
  void count_copy(HostTier::Source source) { (source == HostTier::Source::kHost ? host_hits_ : nvme_reads_) += 1; }
  std::shared_future<void> stream_in(ExpertKey key, Staged& staged);
  bool fill(Device& device, ExpertKey key, std::byte* dst, const std::atomic<bool>& cancelled);
  void prefetch(int layer, const float* x, int64_t m, const model::RoutingDecision& routing);
  // An expert's bytes (a slot, a host copy) as matrices, gated ones with the model's activation.
  model::GatedMlpMatrices views(const std::byte* data) const;

  const model::Transformer& transformer_;
  OffloadOptions options_;
  std::unique_ptr<Predictor> predictor_;
  ExpertBacking backing_;
  HostTier host_;
  std::vector<std::unique_ptr<Device>> devices_;  // null for another rank's devices
  int first_device_ = 0, local_devices_ = 0;     // the devices this process owns
  std::vector<std::unordered_set<ExpertKey, ExpertKeyHash>> pinned_on_;  // per device, from the plan: every rank knows all
  std::vector<float> rank_send_, rank_recv_;      // reused across layers
  std::unique_ptr<Communicator> communicator_;
  std::unordered_map<ExpertKey, std::vector<int>, ExpertKeyHash> homes_;  // plan: devices per expert
  std::unordered_set<ExpertKey, ExpertKeyHash> prefetched_;  // copies started by the predictor, not yet used
  std::vector<std::vector<float>> rows_, results_;  // per task of the layer being run
  std::vector<std::unique_ptr<Staged>> staged_;     // per task: streamed or host-computed experts (in place while copies run)
  OffloadStats stats_;
  std::atomic<uint64_t> host_hits_{0}, nvme_reads_{0}, bytes_h2d_{0};
};

}  // namespace moe::offload
