#include "offload/executor/offloaded_experts.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quantize.h"
#include "offload/executor/expert_importance.h"
#include "runtime/core/error.h"
#include "runtime/model/expert_groups.h"

namespace moe::offload {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// HOBBIT's low-precision stand-in when the store has no quantised copy: int8 with groups of 32
// (or a whole row), made on the host; `data` and `scales` hold the bytes the result views.
model::GatedMlpMatrices quantize_int8(const model::GatedMlpMatrices& full, std::vector<std::vector<int8_t>>& data,
                                      std::vector<std::vector<float>>& scales) {
  model::GatedMlpMatrices q = full;
  cpu::WeightMatrix* mats[3] = {&q.gate, &q.up, &q.down};
  const cpu::WeightMatrix* src[3] = {&full.gate, &full.up, &full.down};
  for (int i = 0; i < 3; ++i) {
    if (src[i]->data == nullptr) continue;  // a GeLU expert has no gate
    const int64_t rows = src[i]->rows, cols = src[i]->cols;
    const int group_size = cols % 32 == 0 ? 32 : int(cols);
    std::vector<float> f32(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) cpu::row_to_f32(*src[i], r, f32.data() + r * cols);
    const QuantFormat format{DType::kI8, group_size};
    data[size_t(i)].resize(cpu::quantized_data_bytes(format, rows, cols));
    scales[size_t(i)].resize(cpu::quantized_scale_count(format, rows, cols));
    cpu::quantize_rows(f32.data(), rows, cols, format, reinterpret_cast<uint8_t*>(data[size_t(i)].data()),
                       scales[size_t(i)].data());
    *mats[i] = cpu::WeightMatrix{data[size_t(i)].data(), DType::kI8, rows, cols, scales[size_t(i)].data(), group_size};
  }
  return q;
}

}  // namespace

struct OffloadedExperts::Device {
  std::unique_ptr<ExpertDevice> device;
  std::vector<float> scratch;  // host compute for this device's tasks (miss cpu)
  std::unordered_map<ExpertKey, const std::byte*, ExpertKeyHash> pinned;
  std::unique_ptr<ExpertCache> cache;
  std::unique_ptr<TransferEngine> engine;
};

// One expert's work on one device: where its weights are (or how to get them).
struct OffloadedExperts::Task {
  // kReady: in the device's memory; kPending: being copied there; kHost: computed on the host
  // (miss cpu); kStream: through the device from a host copy (no slot free); kLowPrecision,
  // kSkip: HOBBIT's.
  // kRemote: on another rank's device (its result arrives from that rank).
  enum Kind { kReady, kPending, kHost, kStream, kLowPrecision, kSkip, kRemote } kind = kReady;
  const model::ExpertGroup* group = nullptr;
  ExpertKey key;
  int device = 0;
  const std::byte* data = nullptr;
  CacheHandle handle;
  std::shared_future<void> staged;  // kHost/kStream: `stage` being filled (on its own thread)
  Staged* stage = nullptr;
  const std::byte* bytes() const { return stage ? stage->data : data; }  // once `staged` is ready
};

OffloadedExperts::OffloadedExperts(const model::Transformer& transformer, OffloadOptions options,
                                   std::unique_ptr<Predictor> predictor)
    : transformer_(transformer),
      options_(std::move(options)),
      predictor_(std::move(predictor)),
      backing_(transformer.weights(), options_.store),
      host_(backing_, options_.host_bytes) {
  host_.release_after_read(options_.release_read_pages);
  const auto& config = transformer.config();
  const uint64_t slot = backing_.layout().bytes;
  MOE_CHECK(options_.devices >= 1 && options_.devices <= 64, ErrorCode::kInvalidArgument, "--devices must be 1 to 64");
  MOE_CHECK(options_.admission == "frequency" || options_.admission == "all", ErrorCode::kInvalidArgument,
            "unknown cache admission '{}' (frequency or all)", options_.admission);
  MOE_CHECK(options_.miss == "wait" || options_.miss == "cpu" || options_.miss == "hobbit", ErrorCode::kInvalidArgument,
            "unknown miss policy '{}' (wait, cpu or hobbit)", options_.miss);
  // Importances are gate mass in [0, 1] (a threshold above 1 holds for every expert); NaN would
  // make every comparison false.
  for (const double t : {options_.hobbit_t1, options_.hobbit_t2})
    MOE_CHECK(std::isfinite(t) && t >= 0, ErrorCode::kInvalidArgument,
              "HOBBIT's thresholds must be finite numbers of at least 0, not {}", t);
  MOE_CHECK(options_.device_bytes >= slot, ErrorCode::kOutOfMemory,
            "a device budget of {:.2f} MiB holds no expert: one takes {:.2f} MiB", options_.device_bytes / kMiB, slot / kMiB);
  const std::vector<int> model_layer_of = config.moe_layers();
  local_devices_ = options_.devices;
  if (options_.ranks) {
    const int ranks = options_.ranks->size();
    MOE_CHECK(options_.local_devices >= 1 && options_.local_devices * ranks == options_.devices, ErrorCode::kInvalidArgument,
              "{} devices are not {} ranks x {} devices", options_.devices, ranks, options_.local_devices);
    local_devices_ = options_.local_devices;
    first_device_ = options_.ranks->rank() * local_devices_;
  }

  // The plan's homes: pinned experts per device, host-homed experts loaded now (those of this
  // process's devices).
  std::vector<std::vector<ExpertKey>> pinned(static_cast<size_t>(options_.devices));
  pinned_on_.resize(size_t(options_.devices));
  if (const auto* plan = options_.plan) {
    MOE_CHECK(plan->num_layers() == int(model_layer_of.size()) && plan->num_experts() == config.num_experts,
              ErrorCode::kInvalidArgument, "the plan is for {} MoE layers x {} experts, the model has {} x {}",
              plan->num_layers(), plan->num_experts(), model_layer_of.size(), config.num_experts);
    MOE_CHECK(plan->devices_size() == options_.devices, ErrorCode::kInvalidArgument,
              "the plan places experts on {} devices, --devices is {}", plan->devices_size(), options_.devices);
    for (const auto& e : plan->experts()) {
      const ExpertKey key{model_layer_of[size_t(e.layer())], e.expert()};
      homes_[key].assign(e.devices().begin(), e.devices().end());
      const bool here = std::any_of(e.devices().begin(), e.devices().end(), [&](int d) { return owns(d); });
      if (e.home() == placement::proto::TIER_GPU)
        for (int d : e.devices()) pinned[size_t(d)].push_back(key), pinned_on_[size_t(d)].insert(key);
      else if (e.home() == placement::proto::TIER_HOST && (here || e.devices().empty()))
        MOE_CHECK(host_.pin(key), ErrorCode::kOutOfMemory,
                  "the plan homes more experts on the host than --host-mem {:.2f} MiB holds ({:.2f} MiB each)",
                  options_.host_bytes / kMiB, slot / kMiB);
    }
  }
  const ExpertDeviceFactory make_device =
      options_.make_device ? options_.make_device : [](int, const ExpertLayout&) { return std::make_unique<CpuExpertDevice>(); };
  std::vector<std::byte> staging;  // the plan's pinned experts on their way to a device
  devices_.resize(size_t(options_.devices));
  for (int d = first_device_; d < first_device_ + local_devices_; ++d) {
    auto dev = std::make_unique<Device>();
    dev->device = make_device(d, backing_.layout());
    const uint64_t pinned_bytes = pinned[size_t(d)].size() * slot;
    MOE_CHECK(pinned_bytes <= options_.device_bytes, ErrorCode::kOutOfMemory,
              "the plan pins {} experts ({:.2f} MiB) on device {}, over its budget of {:.2f} MiB", pinned[size_t(d)].size(),
              pinned_bytes / kMiB, d, options_.device_bytes / kMiB);
    if (pinned_bytes > 0) {
      staging.resize(slot);
      std::byte* arena = dev->device->allocate(pinned_bytes);
      for (size_t i = 0; i < pinned[size_t(d)].size(); ++i) {
        std::byte* at = arena + i * slot;
        backing_.read(pinned[size_t(d)][i], staging.data());
        backing_.release_mapped(pinned[size_t(d)][i]);  // it lives on the device from now on
        auto upload = dev->device->begin_upload(at);
        upload->write(0, staging.data(), slot);
        upload->finish();
        dev->pinned[pinned[size_t(d)][i]] = at;
      }
    }
    const uint64_t experts = uint64_t(model_layer_of.size()) * uint64_t(config.num_experts);
    const int slots = int(std::min<uint64_t>((options_.device_bytes - pinned_bytes) / slot, experts));
    std::byte* cache_arena = dev->device->allocate(uint64_t(std::max(slots, 1)) * slot);
    dev->cache = std::make_unique<ExpertCache>(cache_arena, slot, slots, make_policy(options_.policy, int(model_layer_of.size())),
                                               make_admission(options_.admission, experts));
    Device* raw = dev.get();
    dev->engine = std::make_unique<TransferEngine>(
        *dev->cache, [this, raw](ExpertKey key, std::byte* dst, const std::atomic<bool>& cancelled) {
          return fill(*raw, key, dst, cancelled);
        });
    devices_[size_t(d)] = std::move(dev);
  }
  if (options_.make_communicator && options_.devices > 1 && !options_.ranks) communicator_ = options_.make_communicator(options_.devices);
  else communicator_ = std::make_unique<InProcessCommunicator>(options_.devices);
}

// On a copy thread: the expert's bytes from the host tier (or below it) into a device slot.
bool OffloadedExperts::fill(Device& device, ExpertKey key, std::byte* dst, const std::atomic<bool>& cancelled) {
  const auto upload = device.device->begin_upload(dst);  // its destruction waits for copies in flight
  const auto source = host_.copy_out(
      key, [&](uint64_t offset, const std::byte* src, uint64_t bytes) { upload->write(offset, src, bytes); }, &cancelled);
  if (source == HostTier::Source::kCancelled) return false;
  upload->finish();
  count_copy(source);
  bytes_h2d_ += backing_.layout().bytes;
  return true;
}

OffloadedExperts::~OffloadedExperts() {
  for (auto& d : devices_)
    if (d) d->engine.reset();  // copy threads stop before the caches go
}

int OffloadedExperts::device_of(ExpertKey key, std::vector<int64_t>* load) const {
  const auto it = homes_.find(key);
  if (it == homes_.end()) return key.expert % options_.devices;
  // Replicas: the device holding a pinned copy with the fewest tokens so far in this layer (as
  // EPLB balances them); an offloaded expert has one device.
  int best = -1;
  for (int d : it->second)
    if (pinned_on_[size_t(d)].count(key) && (best < 0 || (load && (*load)[size_t(d)] < (*load)[size_t(best)]))) best = d;
  return best >= 0 ? best : it->second.front();
}

void OffloadedExperts::fetch_bypass(ExpertKey key, std::vector<std::byte>& buffer) {
  buffer.resize(backing_.layout().bytes);
  fetch_into(key, buffer.data());
}

void OffloadedExperts::fetch_into(ExpertKey key, std::byte* dst) {
  const auto source = host_.copy_out(key, dst);
  count_copy(source);
}

// The expert's bytes for a streamed or host-computed task, on a thread of its own so that a
// read from below the host tier overlaps the layer's other experts' compute as a cache fill
// would: in place in the host pool where it is (or can be) held, else copied into `staged`.
std::shared_future<void> OffloadedExperts::stream_in(ExpertKey key, Staged& staged) {
  return std::async(std::launch::async, [this, key, &staged] {
           HostTier::Source source = HostTier::Source::kHost;
           staged.lease = host_.borrow(key, &source);
           if (staged.lease) {
             count_copy(source);
             staged.data = staged.lease.data();
             return;
           }
           staged.copy.resize(backing_.layout().bytes);
           fetch_into(key, staged.copy.data());
           staged.data = staged.copy.data();
         })
      .share();
}

model::GatedMlpMatrices OffloadedExperts::views(const std::byte* data) const {
  return backing_.layout().views(data, transformer_.config().activation);
}

// The task's expert on its rows [m, hidden] into results [m, hidden], on its device.
void OffloadedExperts::compute(const Task& task, const float* rows, int64_t m, int64_t hidden, float* results) {
  ExpertDevice& device = *devices_[size_t(task.device)]->device;
  if (task.staged.valid()) task.staged.get();  // the bytes are there (or the copy's error is raised here)
  const std::byte* data = task.bytes();
  if (task.kind == Task::kSkip) {
    std::fill(results, results + m * hidden, 0.0f);
  } else if (task.kind == Task::kLowPrecision && !backing_.low_precision_format().empty()) {
    // HOBBIT's low-precision expert: the store's quantised copy, read instead of the full one.
    std::vector<std::byte> buffer;
    model::GatedMlpMatrices q = backing_.read_low_precision(task.key, buffer);
    q.act = transformer_.config().activation;
    device.run_host_expert(q, rows, m, results);
  } else if (task.kind == Task::kLowPrecision) {
    // No quantised copy in the store (or no store): an int8 copy made on the host.
    std::vector<std::vector<int8_t>> int8_data(3);
    std::vector<std::vector<float>> scales(3);
    const model::GatedMlpMatrices q = quantize_int8(views(data), int8_data, scales);
    device.run_host_expert(q, rows, m, results);
  } else if (task.kind == Task::kHost) {
    model::run_gated_mlp(views(data), rows, m, results, devices_[size_t(task.device)]->scratch);
  } else if (task.kind == Task::kStream) {
    device.run_host_expert(views(data), rows, m, results);
  } else {
    device.run_expert(views(data), rows, m, results);
  }
}

void OffloadedExperts::run(int layer, const float* x, int64_t hidden, const model::RoutingDecision& routing, float* out) {
  const int sparse = transformer_.config().moe_layer_index(layer);
  for (auto& d : devices_)
    if (d) d->cache->set_current_layer(sparse);
  const std::vector<model::ExpertGroup> groups = model::group_by_expert(routing);
  // Bypass and host copies go to buffers kept across layers (a fresh 5-50 MiB buffer per expert
  // would cost its page faults on every use); a member, so it outlives the tasks' copies. It
  // keeps as many as one layer ever streamed.
  size_t streamed = 0;  // entries of staged_ in use by this layer
  const auto next_stage = [&]() -> Staged& {
    if (staged_.size() <= streamed) staged_.push_back(std::make_unique<Staged>());
    return *staged_[streamed++];
  };
  std::vector<Task> tasks(groups.size());
  std::vector<int64_t> load(size_t(options_.devices), 0);     // tokens per device in this layer
  const bool hobbit = options_.miss == "hobbit";
  const std::vector<float> importance_of = hobbit ? hobbit_importance(routing) : std::vector<float>{};
  for (size_t i = 0; i < groups.size(); ++i) {
    Task& t = tasks[i];
    t.group = &groups[i];
    t.key = ExpertKey{layer, groups[i].expert};
    t.device = device_of(t.key, &load);
    load[size_t(t.device)] += int64_t(groups[i].tokens.size());
    if (!owns(t.device)) {
      t.kind = Task::kRemote;
      continue;
    }
    Device& dev = *devices_[size_t(t.device)];
    ++stats_.uses;
    if (const auto it = dev.pinned.find(t.key); it != dev.pinned.end()) {
      ++stats_.pinned_hits;
      t.data = it->second;
      continue;
    }
    ++stats_.offloaded_uses;
    const bool was_prefetched = prefetched_.erase(t.key) > 0;
    if (was_prefetched) {
      ++stats_.prefetches_used;
      ++stats_.offloaded_uses_prefetched;
    }
    if (auto handle = dev.cache->acquire(t.key)) {
      ++stats_.cache_hits;
      t.data = handle->data();
      t.handle = std::move(*handle);
      continue;
    }
    if (dev.cache->state(t.key) == ExpertCache::State::kFilling) {
      t.kind = Task::kPending;  // a prefetch in flight
      ++stats_.late_hits;
      continue;
    }
    // A miss.
    float importance = 0;  // hobbit: the most any of its tokens needs it
    if (hobbit)
      for (int32_t a : groups[i].assignments) importance = std::max(importance, importance_of[size_t(a)]);
    if (hobbit && importance < options_.hobbit_t2) {
      t.kind = Task::kSkip;
      ++stats_.skipped;
    } else if (hobbit && importance < options_.hobbit_t1 && !backing_.low_precision_format().empty()) {
      t.kind = Task::kLowPrecision;  // compute() reads the store's quantised copy
      ++stats_.low_precision;
    } else if (options_.miss == "cpu" || (hobbit && importance < options_.hobbit_t1)) {
      t.stage = &next_stage();
      t.staged = stream_in(t.key, *t.stage);  // computed on the host from the host copy
      t.kind = options_.miss == "cpu" ? Task::kHost : Task::kLowPrecision;
      ++(options_.miss == "cpu" ? stats_.cpu_computed : stats_.low_precision);
    } else if (std::byte* slot = dev.cache->reserve(t.key)) {
      dev.engine->submit(t.key, slot, /*demand=*/true);
      t.kind = Task::kPending;
    } else {  // every slot is pinned by this layer's experts, or the admission filter keeps
              // what is cached: stream it through a buffer
      t.stage = &next_stage();
      t.staged = stream_in(t.key, *t.stage);
      bytes_h2d_ += backing_.layout().bytes;  // a copy to the device all the same
      t.kind = Task::kStream;
      ++stats_.bypassed;
    }
  }
  // Copies for later layers queue behind this layer's demand copies.
  if (predictor_) prefetch(layer, x, routing.num_tokens(), routing);

  // The rows each task computes: gathered from x on one device; with several, token t lives on
  // device t % N and the all-to-all carries its rows to the devices computing its experts.
  const int N = options_.devices;
  std::vector<std::vector<float>>& rows = rows_;  // reused across layers: their capacity stays
  std::vector<std::vector<float>>& results = results_;
  if (rows.size() < tasks.size()) rows.resize(tasks.size()), results.resize(tasks.size());
  // Across processes every rank holds every token (the dense part is replicated), so its tasks
  // gather their rows where they are.
  const bool ranked = options_.ranks != nullptr;
  if (N == 1 || ranked) {
    for (size_t i = 0; i < tasks.size(); ++i)
      if (tasks[i].kind != Task::kRemote) model::gather_rows(x, hidden, *tasks[i].group, rows[i]);
  } else {
    dispatch(tasks, x, hidden, rows);
  }

  // Each device computes what it has (the experts in its memory together), then what arrives,
  // in order of submission. Devices with hardware of their own (GPUs) work at once, a thread
  // each; CPU virtual devices take turns.
  std::vector<double> stalled(static_cast<size_t>(N), 0.0);
  const auto work = [&](int d) {
    std::vector<ExpertRun> ready;  // in the device's memory: computed together, first
    for (size_t i = 0; i < tasks.size(); ++i) {
      if (tasks[i].device != d || tasks[i].kind != Task::kReady) continue;
      results[i].resize(rows[i].size());
      ready.push_back({views(tasks[i].data), rows[i].data(), int64_t(tasks[i].group->tokens.size()),
                       results[i].data()});
    }
    devices_[size_t(d)]->device->run_experts(ready);
    for (size_t i = 0; i < tasks.size(); ++i) {  // on the host, streamed, low precision or skipped
      const Task& t = tasks[i];
      if (t.device != d || t.kind == Task::kReady || t.kind == Task::kPending) continue;
      results[i].resize(rows[i].size());
      compute(t, rows[i].data(), int64_t(t.group->tokens.size()), hidden, results[i].data());
    }
    for (size_t i = 0; i < tasks.size(); ++i) {
      Task& t = tasks[i];
      if (t.device != d || t.kind != Task::kPending) continue;
      const auto start = std::chrono::steady_clock::now();
      auto handle = devices_[size_t(d)]->cache->wait(t.key);
      stalled[size_t(d)] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::vector<std::byte> fallback;
      if (handle) {
        t.data = handle->data();
        t.handle = std::move(*handle);
        t.kind = Task::kReady;
      } else {  // the copy was abandoned (cancelled or failed): read it here, surfacing any error
        fetch_bypass(t.key, fallback);
        t.data = fallback.data();
        t.kind = Task::kStream;
      }
      results[i].resize(rows[i].size());
      compute(t, rows[i].data(), int64_t(t.group->tokens.size()), hidden, results[i].data());
      t.handle.release();
    }
  };
  const int first = first_device_, last = first_device_ + local_devices_;
  bool concurrent = local_devices_ > 1;
  for (int d = first; d < last; ++d) concurrent = concurrent && devices_[size_t(d)]->device->concurrent();
  if (concurrent) {
    std::vector<std::future<void>> running;
    for (int d = first; d < last; ++d) running.push_back(std::async(std::launch::async, work, d));
    for (auto& r : running) r.wait();
    for (auto& r : running) r.get();  // the first device's error, after every device stopped
  } else {
    for (int d = first; d < last; ++d) work(d);
  }
  for (double s : stalled) stats_.stall_seconds += s;
  for (size_t i = 0; i < streamed; ++i) staged_[i]->lease.reset();  // every task computed: the pool may evict them again

  // The results go back where their tokens live and land in the assignments' rows.
  if (N == 1) {
    for (size_t i = 0; i < tasks.size(); ++i) model::scatter_rows(results[i].data(), hidden, *tasks[i].group, out);
  } else if (ranked) {
    exchange_with_ranks(tasks, results, hidden, out);
  } else {
    combine(tasks, results, hidden, out);
  }
}

// Across processes: each rank's results land in its own `out` at their assignments, and travel
// to every other rank (each runs the rest of the layer on every token) in one exchange, where
// they land at theirs. A row lands where it would in one process, so the sums downstream add
// the same values in the same order: the same bits whatever the ranks.
void OffloadedExperts::exchange_with_ranks(const std::vector<Task>& tasks, const std::vector<std::vector<float>>& results,
                                           int64_t hidden, float* out) {
  const auto start = std::chrono::steady_clock::now();
  RankCommunicator& ranks = *options_.ranks;
  const int R = ranks.size(), me = ranks.rank();
  const auto rank_of = [&](int device) { return device / local_devices_; };
  std::vector<int64_t> rows_of(size_t(R), 0);  // result rows each rank computed, in task order
  for (const Task& t : tasks) rows_of[size_t(rank_of(t.device))] += int64_t(t.group->tokens.size());
  rank_send_.resize(size_t(rows_of[size_t(me)] * hidden));
  float* at = rank_send_.data();
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (tasks[i].kind == Task::kRemote) continue;
    model::scatter_rows(results[i].data(), hidden, *tasks[i].group, out);
    at = std::copy(results[i].begin(), results[i].end(), at);
  }
  // The same rows to every other rank (all from offset 0); each peer's rows after the last.
  std::vector<int64_t> send_rows(size_t(R), rows_of[size_t(me)]), send_offsets(size_t(R), 0);
  std::vector<int64_t> recv_rows = rows_of, recv_offsets(size_t(R), 0);
  send_rows[size_t(me)] = recv_rows[size_t(me)] = 0;
  for (int r = 1; r < R; ++r) recv_offsets[size_t(r)] = recv_offsets[size_t(r) - 1] + recv_rows[size_t(r) - 1];
  rank_recv_.resize(size_t((recv_offsets.back() + recv_rows.back()) * hidden));
  ranks.all_to_all(rank_send_.data(), send_rows, send_offsets, rank_recv_.data(), recv_rows, recv_offsets, hidden);
  std::vector<int64_t> cursor = recv_offsets;
  for (const Task& t : tasks) {
    if (t.kind != Task::kRemote) continue;
    int64_t& row = cursor[size_t(rank_of(t.device))];
    for (size_t j = 0; j < t.group->tokens.size(); ++j, ++row)
      std::copy_n(rank_recv_.data() + row * hidden, hidden, out + int64_t(t.group->assignments[j]) * hidden);
  }
  stats_.rank_exchange_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Token t's rows go from device t % N to the device of each of its experts' tasks; each task's
// rows are rebuilt there in its group's order.
void OffloadedExperts::dispatch(const std::vector<Task>& tasks, const float* x, int64_t hidden,
                                std::vector<std::vector<float>>& rows) {
  const size_t N = size_t(options_.devices);
  std::vector<std::vector<std::vector<float>>> send(N, std::vector<std::vector<float>>(N));
  for (const Task& t : tasks)
    for (int32_t token : t.group->tokens) {
      auto& buffer = send[size_t(token) % N][size_t(t.device)];
      buffer.insert(buffer.end(), x + int64_t(token) * hidden, x + int64_t(token + 1) * hidden);
    }
  const auto recv = communicator_->all_to_all(std::move(send));  // recv[device][source]
  std::vector<std::vector<size_t>> cursor(N, std::vector<size_t>(N, 0));
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Task& t = tasks[i];
    rows[i].resize(t.group->tokens.size() * size_t(hidden));
    for (size_t j = 0; j < t.group->tokens.size(); ++j) {
      const size_t source = size_t(t.group->tokens[j]) % N;
      size_t& at = cursor[size_t(t.device)][source];
      std::copy_n(recv[size_t(t.device)][source].data() + at, hidden, rows[i].data() + j * size_t(hidden));
      at += size_t(hidden);
    }
  }
}

// The reverse of dispatch: each result row travels to its token's device and into `out` at
// its assignment.
void OffloadedExperts::combine(const std::vector<Task>& tasks, const std::vector<std::vector<float>>& results, int64_t hidden,
                               float* out) {
  const size_t N = size_t(options_.devices);
  std::vector<std::vector<std::vector<float>>> send(N, std::vector<std::vector<float>>(N));
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Task& t = tasks[i];
    for (size_t j = 0; j < t.group->tokens.size(); ++j) {
      auto& buffer = send[size_t(t.device)][size_t(t.group->tokens[j]) % N];
      const float* row = results[i].data() + j * size_t(hidden);
      buffer.insert(buffer.end(), row, row + hidden);
    }
  }
  const auto recv = communicator_->all_to_all(std::move(send));  // recv[token's device][expert's device]
  std::vector<std::vector<size_t>> cursor(N, std::vector<size_t>(N, 0));
  for (const Task& t : tasks)
    for (size_t j = 0; j < t.group->tokens.size(); ++j) {
      const size_t home = size_t(t.group->tokens[j]) % N;
      size_t& at = cursor[home][size_t(t.device)];
      std::copy_n(recv[home][size_t(t.device)].data() + at, hidden, out + int64_t(t.group->assignments[j]) * hidden);
      at += size_t(hidden);
    }
}

void OffloadedExperts::prefetch(int layer, const float* x, int64_t m, const model::RoutingDecision& routing) {
  // Guesses for this layer that were never used are cancelled (their slots come back).
  for (auto it = prefetched_.begin(); it != prefetched_.end();) {
    if (it->layer <= layer) {
      devices_[size_t(device_of(*it, nullptr))]->engine->cancel(*it);
      ++stats_.prefetches_cancelled;
      it = prefetched_.erase(it);
    } else {
      ++it;
    }
  }
  for (const ExpertKey key : predictor_->predict(layer, x, m, routing)) {
    const int d = device_of(key, nullptr);
    if (!owns(d)) continue;  // another rank's: it guesses the same and copies it there
    Device& dev = *devices_[size_t(d)];
    if (dev.pinned.count(key) || dev.cache->state(key) != ExpertCache::State::kAbsent) continue;
    std::byte* slot = dev.cache->reserve(key);
    if (!slot) continue;  // no evictable slot, or the filter keeps the victim
    dev.engine->submit(key, slot, /*demand=*/false);
    prefetched_.insert(key);
    ++stats_.prefetches;
  }
}

OffloadStats OffloadedExperts::stats() const {
  OffloadStats s = stats_;
  s.host_hits = host_hits_.load();
  s.nvme_reads = nvme_reads_.load();
  s.bytes_host_to_device = bytes_h2d_.load();
  s.bytes_nvme_to_host = backing_.bytes_read();
  s.bytes_between_devices = communicator_->bytes_moved();
  if (const RankCommunicator* ranks = options_.ranks.get()) {
    s.bytes_between_ranks = ranks->bytes_sent();
    s.rank_exchanges = ranks->exchanges();
    s.rank_collective_seconds = ranks->seconds();
  }
  return s;
}

}  // namespace moe::offload

namespace moe::offload {
int OffloadedExperts::cache_slots(int device) const {
  MOE_CHECK(owns(device), ErrorCode::kInvalidArgument, "device {} belongs to another rank", device);
  return devices_[size_t(device)]->cache->slots();
}
}  // namespace moe::offload
