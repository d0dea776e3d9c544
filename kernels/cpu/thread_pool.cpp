#include "kernels/cpu/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>

#include <spdlog/spdlog.h>

namespace moe::cpu {
namespace {

thread_local bool t_inside_pool = false;

// How long a thread spins for the next event before it sleeps: longer than the gap between
// two loops of a decode step, short enough that an idle pool leaves the cores alone.
constexpr auto kSpinFor = std::chrono::microseconds(200);

int threads_from_environment() {
  const int all = int(std::max(1u, std::thread::hardware_concurrency()));
  if (const char* env = std::getenv("MOE_THREADS"); env && *env) {
    // As MOE_ISA: a value that is not one is said once and the default used (atoi read "abc" as 0).
    const std::string_view v = env;
    int n = 0;
    const auto [at, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec == std::errc() && at == v.data() + v.size() && n >= 1 && n <= 256) return n;
    const int used = ec == std::errc() && at == v.data() + v.size() && n > 256 ? 256 : all;
    spdlog::warn("MOE_THREADS={} is not a number of threads from 1 to 256: using {}", v, used);
    return used;
  }
  return all;
}

// Returns once `value` differs from `old`: spinning first, then asleep on the atomic, counted
// in `sleepers` so that wakers only make the system call when someone sleeps.
template <class T>
T wait_while_equal(const std::atomic<T>& value, T old, std::atomic<int>& sleepers) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinFor;
  for (int spin = 0;; ++spin) {
    const T now = value.load(std::memory_order_acquire);
    if (now != old) return now;
    _mm_pause();
    if (spin % 64 == 63 && std::chrono::steady_clock::now() > deadline) break;
  }
  for (;;) {
    sleepers.fetch_add(1);  // seq_cst with the waker's store-then-load: one of us sees the other
    T now = value.load();
    if (now == old) {
      value.wait(old);
      now = value.load(std::memory_order_acquire);
    }
    sleepers.fetch_sub(1);
    if (now != old) return now;
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  threads = std::max(1, threads);
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stopping_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& w : workers_) w.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(threads_from_environment());
  return pool;
}

void ThreadPool::run_chunk(int index) {
  const int64_t begin = n_ * index / chunks_, end = n_ * (index + 1) / chunks_;
  if (begin >= end) return;
  try {
    (*body_)(begin, end);
  } catch (...) {
    std::lock_guard lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker_loop(int index) {
  t_inside_pool = true;
  uint64_t seen = 0;
  for (;;) {
    seen = wait_while_equal(generation_, seen, sleepers_);
    if (stopping_.load()) return;
    if (index < chunks_) run_chunk(index);
    if (pending_.fetch_sub(1) == 1 && sleepers_.load() > 0) pending_.notify_all();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  if (n == 1 || workers_.empty() || t_inside_pool) {
    body(0, n);
    return;
  }
  std::lock_guard run_lock(run_mutex_);
  n_ = n;
  chunks_ = static_cast<int>(std::min<int64_t>(n, size()));
  body_ = &body;
  error_ = nullptr;
  pending_.store(static_cast<int>(workers_.size()));
  generation_.fetch_add(1);  // publishes the loop (seq_cst, then the sleepers are read)
  if (sleepers_.load() > 0) generation_.notify_all();
  t_inside_pool = true;
  run_chunk(0);
  t_inside_pool = false;
  for (int left = pending_.load(std::memory_order_acquire); left != 0; left = pending_.load(std::memory_order_acquire))
    wait_while_equal(pending_, left, sleepers_);
  body_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace moe::cpu
