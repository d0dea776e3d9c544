#pragma once
// A fixed set of worker threads for data-parallel loops. parallel_for splits [0, n) into one
// contiguous chunk per thread (a static partition: no work stealing, so which thread computes
// what never affects a result) and blocks until all chunks are done.
//
// A decode step hands out a hundred loops of tens of microseconds each, so the hand-off is
// what matters: workers spin on an atomic for a short while after each loop (long enough to
// catch the next one) before they sleep on it, and the caller is woken the same way.
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Sized by MOE_THREADS, else the hardware's concurrency.
  static ThreadPool& global();

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(begin, end) on disjoint chunks covering [0, n). Runs inline when n is small
  // or when called from inside a worker. Rethrows the first exception a chunk threw.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& body);

 private:
  void worker_loop(int index);
  void run_chunk(int index);

  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};  // one more per loop; workers wait for it to move
  std::atomic<int> pending_{0};          // workers yet to finish the current loop
  std::atomic<int> sleepers_{0};         // threads asleep on generation_ or pending_
  std::atomic<bool> stopping_{false};
  int64_t n_ = 0;
  int chunks_ = 0;
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  std::mutex error_mutex_;
  std::exception_ptr error_;
  std::mutex run_mutex_;  // one parallel_for at a time from outside the pool
};

}  // namespace moe::cpu
