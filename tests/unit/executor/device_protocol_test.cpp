// The contract between the executor and its devices, checked on the CPU so that the CUDA device
// (which relies on it) is covered where no GPU is: a slot is computed only after its upload
// finished and is never uploaded into while a kernel reads it; an upload covers the whole slot
// exactly once; a cancelled upload leaves its slot unusable until refilled; nothing writes a
// slot between its upload's finish and the compute that reads it. A checking device wraps the
// CPU device, stretches uploads and computes with short sleeps so that the copy thread and the
// executor's thread overlap, and records every breach; randomized configurations must give the
// resident run's bits with no breach. A batch of experts (run_experts) is checked as a whole.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "offload/executor/offloaded_experts.h"
#include "runtime/model/model_loader.h"

namespace moe::offload {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures";

uint64_t fingerprint(const std::byte* p, uint64_t n) {  // FNV-1a
  uint64_t h = 1469598103934665603ull;
  for (uint64_t i = 0; i < n; ++i) h = (h ^ uint64_t(p[i])) * 1099511628211ull;
  return h;
}

class CheckingDevice final : public ExpertDevice {
 public:
  explicit CheckingDevice(const ExpertLayout& layout, uint32_t seed) : layout_(layout), rng_(seed) {}
  std::string name() const override { return "checking"; }
  bool concurrent() const override { return true; }  // several at once, as GPUs are driven

  std::byte* allocate(uint64_t bytes) override {
    std::byte* p = inner_.allocate(bytes);
    std::lock_guard lock(mutex_);
    regions_[p] = bytes;
    return p;
  }

  class CheckingUpload final : public Upload {
   public:
    CheckingUpload(CheckingDevice& d, std::byte* dst) : d_(d), dst_(dst) {}
    ~CheckingUpload() override {
      std::lock_guard lock(d_.mutex_);
      d_.uploading_.erase(dst_);
      if (!finished_) d_.ready_.erase(dst_);  // cancelled: the slot holds a partial expert
    }
    void write(uint64_t offset, const std::byte* src, uint64_t bytes) override {
      if (offset != covered_ || offset + bytes > d_.layout_.bytes) d_.breach("an upload wrote out of order or past its slot");
      d_.pause(20);
      std::memcpy(dst_ + offset, src, bytes);
      covered_ = offset + bytes;
    }
    void finish() override {
      if (covered_ != d_.layout_.bytes) d_.breach("an upload finished without covering its slot");
      std::lock_guard lock(d_.mutex_);
      d_.ready_[dst_] = fingerprint(dst_, d_.layout_.bytes);
      finished_ = true;
      ++d_.uploads_;
    }

   private:
    CheckingDevice& d_;
    std::byte* dst_;
    uint64_t covered_ = 0;
    bool finished_ = false;
  };

  std::unique_ptr<Upload> begin_upload(std::byte* dst) override {
    std::lock_guard lock(mutex_);
    if (!is_slot(dst)) breach_locked("an upload into memory that is not one of the device's slots");
    if (computing_.count(dst)) breach_locked("an upload into a slot a kernel is reading");
    if (!uploading_.insert(dst).second) breach_locked("two uploads into one slot at once");
    ready_.erase(dst);
    return std::make_unique<CheckingUpload>(*this, dst);
  }

  void run_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) override {
    const ExpertRun run{w, x, m, out};
    run_experts(std::span(&run, 1));
  }

  // Every slot of the batch is checked before any kernel and after all of them, as a GPU's
  // grouped launch reads them all at once.
  void run_experts(std::span<const ExpertRun> runs) override {
    std::vector<bool> sound;
    {
      std::lock_guard lock(mutex_);
      largest_batch_ = std::max(largest_batch_, runs.size());
      for (const ExpertRun& r : runs) {
        std::byte* slot = slot_of(r.w);
        const auto it = ready_.find(slot);
        bool ok = false;
        if (uploading_.count(slot)) breach_locked("a kernel read a slot still being uploaded");
        else if (it == ready_.end()) breach_locked("a kernel read a slot no finished upload filled");
        else if (it->second != fingerprint(slot, layout_.bytes)) breach_locked("a slot changed between its upload and its use");
        else ok = true;
        sound.push_back(ok);
        ++computing_[slot];
      }
    }
    pause(50);
    inner_.run_experts(runs);
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < runs.size(); ++i) {
      std::byte* slot = slot_of(runs[i].w);
      const auto it = ready_.find(slot);
      if (sound[i] && (it == ready_.end() || it->second != fingerprint(slot, layout_.bytes)))
        breach_locked("a slot was rewritten under a kernel");
      if (--computing_[slot] == 0) computing_.erase(slot);
    }
  }

  void run_host_expert(const model::GatedMlpMatrices& w, const float* x, int64_t m, float* out) override {
    inner_.run_host_expert(w, x, m, out);
  }

  std::vector<std::string> breaches() const {
    std::lock_guard lock(mutex_);
    return breaches_;
  }
  int uploads() const {
    std::lock_guard lock(mutex_);
    return uploads_;
  }
  size_t largest_batch() const {
    std::lock_guard lock(mutex_);
    return largest_batch_;
  }

 private:
  std::byte* slot_of(const model::GatedMlpMatrices& w) const {
    return const_cast<std::byte*>(static_cast<const std::byte*>(w.up.data) - layout_.up.offset);
  }
  bool is_slot(const std::byte* p) const {
    for (const auto& [base, bytes] : regions_)
      if (p >= base && p < base + bytes) return uint64_t(p - base) % layout_.bytes == 0;
    return false;
  }
  void pause(int max_microseconds) {
    int us;
    {
      std::lock_guard lock(mutex_);
      us = int(rng_() % unsigned(max_microseconds));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  }
  void breach(const std::string& what) {
    std::lock_guard lock(mutex_);
    breach_locked(what);
  }
  void breach_locked(const std::string& what) { breaches_.push_back(what); }

  ExpertLayout layout_;
  CpuExpertDevice inner_;
  mutable std::mutex mutex_;
  std::mt19937 rng_;
  std::map<const std::byte*, uint64_t> regions_;
  std::set<std::byte*> uploading_;
  std::map<std::byte*, uint64_t> ready_;  // slot -> fingerprint at its upload's finish
  std::map<std::byte*, int> computing_;
  std::vector<std::string> breaches_;
  int uploads_ = 0;
  size_t largest_batch_ = 0;
};

std::vector<float> run(model::Transformer& t) {
  const std::vector<int32_t> prompt = {1, 17, 200, 33, 5, 250, 96, 7, 128, 64, 3};
  model::KvCache cache = t.make_cache(64);
  std::vector<float> all = t.forward(prompt, cache, model::LogitsWanted::kAll);
  std::vector<float> last(all.end() - t.config().vocab_size, all.end());
  for (int step = 0; step < 4; ++step) {
    const int32_t next = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
    last = t.forward(std::span(&next, 1), cache);
    all.insert(all.end(), last.begin(), last.end());
  }
  return all;
}

TEST(DeviceProtocol, TheExecutorKeepsItUnderRandomBudgetsAndPrefetch) {
  for (const char* fixture : {"mixtral", "ds_moe"}) {
    model::LoadedModel m = model::load_model(kFixtures / fixture);
    model::Transformer& t = *m.transformer;
    if (std::string_view(fixture) == "ds_moe") t.set_routing_mode(model::parse_routing_mode("threshold:1"));
    const std::vector<float> reference = run(t);
    const uint64_t expert = ExpertBacking(t.weights()).layout().bytes;
    const int total = t.config().num_sparse_layers() * t.config().num_experts;
    std::mt19937 rng(11);
    size_t largest_batch = 0;
    for (int trial = 0; trial < 6; ++trial) {
      OffloadOptions o;
      o.devices = 1 + int(rng() % 2);
      const int slots = trial == 0 ? 1 : 1 + int(rng() % unsigned(total / 2));
      o.device_bytes = uint64_t(slots) * expert;
      o.host_bytes = uint64_t(rng() % unsigned(total + 1)) * expert;
      o.policy = std::vector<std::string>{"lru", "lfu", "multi"}[rng() % 3];
      std::vector<CheckingDevice*> devices;
      o.make_device = [&devices, seed = uint32_t(rng())](int index, const ExpertLayout& layout) {
        auto d = std::make_unique<CheckingDevice>(layout, seed + uint32_t(index));
        devices.push_back(d.get());
        return d;
      };
      const std::string predictor = std::vector<std::string>{"none", "next-layer", "stacked:2"}[rng() % 3];
      SCOPED_TRACE(fmt::format("{} trial {}: {} devices x {} slots, host {} experts, {}, {}", fixture, trial, o.devices, slots,
                               o.host_bytes / expert, o.policy, predictor));
      OffloadedExperts runner(t, o, make_predictor(predictor, t, nullptr));
      t.set_expert_runner(&runner);
      const std::vector<float> got = run(t);
      t.set_expert_runner(nullptr);
      EXPECT_EQ(std::memcmp(got.data(), reference.data(), got.size() * sizeof(float)), 0);
      int uploads = 0;
      for (const CheckingDevice* d : devices) {
        for (const std::string& b : d->breaches()) ADD_FAILURE() << b;
        uploads += d->uploads();
        largest_batch = std::max(largest_batch, d->largest_batch());
      }
      EXPECT_GT(uploads, 0);
    }
    EXPECT_GT(largest_batch, 1u) << "the ready experts of a layer reach their device together";
  }
}

// The checking device itself catches each breach it names (a guard that cannot fail is none).
TEST(DeviceProtocol, TheCheckingDeviceCatchesBreaches) {
  model::LoadedModel m = model::load_model(kFixtures / "mixtral");
  const ExpertBacking backing(m.transformer->weights());
  const ExpertLayout& layout = backing.layout();
  std::vector<std::byte> bytes(layout.bytes);
  backing.read(ExpertKey{0, 0}, bytes.data());
  const std::vector<float> x(static_cast<size_t>(layout.up.cols), 0.5f);
  std::vector<float> y(x.size());

  CheckingDevice d(layout, 1);
  std::byte* slots = d.allocate(2 * layout.bytes);
  d.run_expert(layout.views(slots), x.data(), 1, y.data());  // never filled
  {
    auto upload = d.begin_upload(slots);
    upload->write(0, bytes.data(), layout.bytes / 2);
    d.run_expert(layout.views(slots), x.data(), 1, y.data());  // still uploading
    upload->finish();                                          // half a slot
  }
  {
    auto upload = d.begin_upload(slots + layout.bytes);
    upload->write(0, bytes.data(), layout.bytes);
    upload->finish();
  }
  slots[layout.bytes + layout.up.offset] ^= std::byte{1};  // a write after the finish
  d.run_expert(layout.views(slots + layout.bytes), x.data(), 1, y.data());
  d.begin_upload(slots + 8);  // not a slot boundary
  EXPECT_EQ(d.breaches().size(), 5u);
  for (const auto& b : d.breaches()) std::cout << "  caught: " << b << "\n";
}

}  // namespace
}  // namespace moe::offload
