#pragma once
// The scheduler behind a server: one engine thread owns the Scheduler and steps it while any
// sequence runs; request threads submit, read their tokens and cancel through thread-safe
// handles. A request joins the running batch at the next step and leaves when it ends; a
// cancelled one (its client gone) frees its sequence and KV blocks at the next step.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime/engine/scheduler.h"

namespace moe::serve {

// What a request reads: tokens as they come, then the end.
struct StreamEvent {
  std::optional<int32_t> token;
  bool finished = false;
  std::string finish_reason;  // "length", "stop_token", "cancelled", or "error: ..." once finished
};

class RequestStream {
 public:
  // Waits up to `timeout` for the next event; false when none came.
  bool next(StreamEvent& event, std::chrono::milliseconds timeout);
  // Ends the sequence at the next step (idempotent); its remaining events are dropped.
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  engine::SequenceStats stats() const;  // final once the finished event was read

 private:
  friend class ServingEngine;
  void push(StreamEvent event);
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<StreamEvent> events_;
  std::atomic<bool> cancelled_{false};
  engine::SequenceId id_ = 0;
  engine::SequenceStats stats_;
};

struct ServingStats {
  int64_t waiting = 0, running = 0;  // sequences queued, in the running batch
  int64_t kv_blocks_used = 0, kv_blocks = 0;
  int64_t steps = 0, generated_tokens = 0, preemptions = 0;
};

// Thrown by submit() when the queue is full: the server answers 429 with Retry-After.
class Overloaded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Called on the engine thread whenever it has idled `every` (under mpirun: rank 0's heartbeat
// to the ranks that follow its scheduler, which must come from the thread that steps).
struct IdleTick {
  std::chrono::milliseconds every{0};  // 0: never
  std::function<void()> tick;
};

class ServingEngine {
 public:
  // `max_waiting`: sequences that may wait for a place in the batch before submit() refuses.
  ServingEngine(std::unique_ptr<engine::Scheduler> scheduler, int max_waiting, IdleTick idle = {});
  ~ServingEngine();  // stop(false) if still running
  ServingEngine(const ServingEngine&) = delete;
  ServingEngine& operator=(const ServingEngine&) = delete;

  // Queues a sequence; throws moe::Error when it can never run (the scheduler's checks),
  // Overloaded when the queue is full, moe::Error(kUnsupported) once stopping.
  std::shared_ptr<RequestStream> submit(std::vector<int32_t> prompt, const model::GenerationOptions& options);
  // Stops taking requests; lets what runs finish (`finish`), or cancels it; returns when the
  // engine thread has ended.
  void stop(bool finish);
  // Stops taking requests (submit() refuses them) and lets what runs go on.
  void refuse_new();
  // Ends every sequence at the next step (a shutdown's grace period is over).
  void cancel_all();
  ServingStats stats() const;
  // Observes every step (the server's metrics): tokens produced, seconds it took.
  void set_step_observer(std::function<void(int64_t tokens, double seconds)> observer);

 private:
  struct Pending;
  void loop();

  std::unique_ptr<engine::Scheduler> scheduler_;
  int max_waiting_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Pending>> pending_;
  std::vector<std::shared_ptr<RequestStream>> live_;  // the engine thread's: by sequence
  bool stopping_ = false, finish_on_stop_ = true, refusing_ = false, cancel_all_ = false;
  ServingStats stats_;  // updated by the engine thread after each step, under mutex_
  std::function<void(int64_t, double)> observer_;
  IdleTick idle_;
  std::thread thread_;
};

}  // namespace moe::serve
