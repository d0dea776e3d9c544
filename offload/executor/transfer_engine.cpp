#include "offload/executor/transfer_engine.h"

namespace moe::offload {

TransferEngine::TransferEngine(ExpertCache& cache, Fill fill) : cache_(cache), fill_(std::move(fill)) {
  thread_ = std::thread([this] { loop(); });
}

TransferEngine::~TransferEngine() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    for (auto& job : queue_) job.cancelled->store(true);
  }
  changed_.notify_all();
  thread_.join();
}

void TransferEngine::submit(ExpertKey key, std::byte* dst, bool demand) {
  auto flag = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard lock(mutex_);
    live_[key] = flag;
    if (demand) queue_.push_front({key, dst, flag});
    else queue_.push_back({key, dst, flag});
  }
  changed_.notify_all();
}

void TransferEngine::cancel(ExpertKey key) {
  std::lock_guard lock(mutex_);
  const auto it = live_.find(key);
  if (it != live_.end()) it->second->store(true);
}

void TransferEngine::drain() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return queue_.empty() && running_ == 0; });
}

void TransferEngine::loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      job = queue_.front();
      queue_.pop_front();
      ++running_;
    }
    bool done = false;
    if (!job.cancelled->load()) {
      try {
        done = fill_(job.key, job.dst, *job.cancelled);
      } catch (...) {
        done = false;  // the waiter sees an abandoned fill and fetches on demand, surfacing the error
      }
    }
    if (done) cache_.publish(job.key, 0);
    else cache_.abandon(job.key);
    {
      std::lock_guard lock(mutex_);
      const auto it = live_.find(job.key);
      if (it != live_.end() && it->second == job.cancelled) live_.erase(it);
      --running_;
    }
    changed_.notify_all();
  }
}

}  // namespace moe::offload
