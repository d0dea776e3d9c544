#include "runtime/serve/serving_engine.h"

#include <algorithm>
#include <future>

#include "runtime/core/error.h"
#include <spdlog/spdlog.h>

namespace moe::serve {

bool RequestStream::next(StreamEvent& event, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  event = std::move(events_.front());
  events_.pop_front();
  return true;
}

void RequestStream::cancel() { cancelled_.store(true); }

engine::SequenceStats RequestStream::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void RequestStream::push(StreamEvent event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  ready_.notify_all();
}

// A submission waiting for the engine thread, which alone touches the scheduler.
struct ServingEngine::Pending {
  std::vector<int32_t> prompt;
  model::GenerationOptions options;
  std::promise<std::shared_ptr<RequestStream>> result;
};

ServingEngine::ServingEngine(std::unique_ptr<engine::Scheduler> scheduler, int max_waiting, IdleTick idle)
    : scheduler_(std::move(scheduler)), max_waiting_(max_waiting), idle_(std::move(idle)) {
  MOE_CHECK(scheduler_ != nullptr, ErrorCode::kInternal, "a serving engine needs a scheduler");
  stats_.kv_blocks = scheduler_->pool().num_blocks();
  thread_ = std::thread([this] { loop(); });
}

ServingEngine::~ServingEngine() { stop(false); }

void ServingEngine::set_step_observer(std::function<void(int64_t, double)> observer) {
  std::lock_guard lock(mutex_);
  observer_ = std::move(observer);
}

std::shared_ptr<RequestStream> ServingEngine::submit(std::vector<int32_t> prompt, const model::GenerationOptions& options) {
  auto pending = std::make_shared<Pending>();
  pending->prompt = std::move(prompt);
  pending->options = options;
  auto future = pending->result.get_future();
  {
    std::lock_guard lock(mutex_);
    MOE_CHECK(!stopping_ && !refusing_, ErrorCode::kUnsupported, "the server is shutting down");
    if (stats_.waiting + int64_t(pending_.size()) >= max_waiting_)
      throw Overloaded(fmt::format("{} requests are already waiting", stats_.waiting + int64_t(pending_.size())));
    pending_.push_back(pending);
  }
  wake_.notify_all();
  return future.get();  // the scheduler's verdict, within a step
}

ServingStats ServingEngine::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void ServingEngine::refuse_new() {
  std::lock_guard lock(mutex_);
  refusing_ = true;
}

void ServingEngine::cancel_all() {
  {
    std::lock_guard lock(mutex_);
    cancel_all_ = true;
  }
  wake_.notify_all();
}

void ServingEngine::stop(bool finish) {
  {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
    finish_on_stop_ = finish;
  }
  wake_.notify_all();
  thread_.join();
}

void ServingEngine::loop() {
  engine::Scheduler& s = *scheduler_;
  for (;;) {
    std::deque<std::shared_ptr<Pending>> arrived;
    bool stopping = false, finish = true;
    {
      std::unique_lock lock(mutex_);
      const auto ready = [&] { return stopping_ || !pending_.empty() || !s.idle(); };
      if (idle_.every.count() == 0) {
        wake_.wait(lock, ready);
      } else if (!wake_.wait_for(lock, idle_.every, ready)) {
        lock.unlock();
        idle_.tick();
        continue;
      }
      arrived.swap(pending_);
      stopping = stopping_;
      finish = finish_on_stop_ && !cancel_all_;
    }
    for (const auto& p : arrived) {
      try {
        auto stream = std::make_shared<RequestStream>();
        MOE_CHECK(finish, ErrorCode::kUnsupported, "the server is shutting down");
        stream->id_ = s.submit(std::move(p->prompt), p->options);
        live_.push_back(stream);
        p->result.set_value(std::move(stream));
      } catch (...) {
        p->result.set_exception(std::current_exception());
      }
    }
    for (const auto& stream : live_)  // clients gone (or shutting down without finishing)
      if (stream->cancelled() || !finish) s.cancel(stream->id_);
    if (s.idle()) {
      if (stopping) return;
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<engine::SequenceEvent> events;
    try {
      events = s.step();
    } catch (const std::exception& e) {
      // A failed step (out of memory, a broken device) ends every sequence with the error.
      spdlog::error("a batched step failed: {}", e.what());
      for (const auto& stream : live_) {
        s.cancel(stream->id_);
        stream->push({std::nullopt, true, std::string("error: ") + e.what()});
      }
      live_.clear();
      while (!s.idle()) s.step();  // the cancellations free every sequence
      continue;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int64_t tokens = 0;
    for (const engine::SequenceEvent& e : events) {
      const auto it = std::find_if(live_.begin(), live_.end(), [&](const auto& r) { return r->id_ == e.id; });
      if (it == live_.end()) continue;
      tokens += e.token.has_value();
      if (e.finished) {
        {
          std::lock_guard lock((*it)->mutex_);
          (*it)->stats_ = s.sequence_stats(e.id);
        }
        s.forget(e.id);
      }
      (*it)->push({e.token, e.finished, e.finish_reason});
      if (e.finished) live_.erase(it);
    }
    std::function<void(int64_t, double)> observer;
    {
      std::lock_guard lock(mutex_);
      stats_.waiting = s.waiting();
      stats_.running = s.running();
      stats_.kv_blocks_used = s.pool().used_blocks();
      stats_.steps = s.stats().steps;
      stats_.generated_tokens = s.stats().generated_tokens;
      stats_.preemptions = s.stats().preemptions;
      observer = observer_;
    }
    if (observer) observer(tokens, seconds);
  }
}

}  // namespace moe::serve
