#pragma once
// Streams expert blobs from a store into caller buffers: many in flight up to the queue depth,
// short reads completed, transient errors (EINTR, EAGAIN) retried a bounded number of times,
// checksums verified before a blob is declared good. Persistent errors and checksum mismatches
// reach the callback as a moe::Error naming the expert; wrong bytes are never reported good.
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "offload/store/expert_store.h"
#include "offload/store/io_backend.h"
#include "runtime/core/error.h"

namespace moe::offload {

struct ReaderOptions {
  int queue_depth = 16;
  bool verify_checksums = true;
  int max_retries = 8;    // per blob, for EINTR/EAGAIN
  bool direct = true;     // O_DIRECT when the filesystem allows it
  std::string io = "";    // "uring", "pread"; empty: $MOE_IO, else uring when available
};

class ExpertReader {
 public:
  using Callback = std::function<void(ExpertKey key, const std::string& format, const Error* error)>;

  // `backend` replaces the one the options choose (the test seam for fault injection); it
  // must read the store's file through the descriptor passed to `make_backend`.
  using BackendFactory = std::function<std::unique_ptr<IoBackend>(int fd, int queue_depth)>;
  ExpertReader(std::shared_ptr<const ExpertStore> store, ReaderOptions options, BackendFactory make_backend = {},
               std::span<const iovec> registered_buffers = {});
  ~ExpertReader();
  ExpertReader(const ExpertReader&) = delete;
  ExpertReader& operator=(const ExpertReader&) = delete;

  // Bytes a blob's read needs in the destination (rounded up to 4 KiB for O_DIRECT).
  static uint64_t read_bytes(const store::ExpertBlob& blob);

  // Queues a read of (key, format) into `dst` (4 KiB aligned, read_bytes() long). Unknown
  // experts throw at once; I/O outcomes arrive through `done` during wait_all().
  void submit(ExpertKey key, std::string_view format, std::byte* dst, Callback done);
  // Runs until every queued read has completed or failed, calling the callbacks.
  void wait_all() { wait(/*all=*/true); }
  // Handles at least one completion (when anything is outstanding), calling its callback.
  void wait_some() { wait(/*all=*/false); }
  size_t pending() const { return jobs_.size(); }
  // One blocking read; throws the error a callback would have seen.
  void read(ExpertKey key, std::string_view format, std::byte* dst);

  std::string backend_name() const { return backend_->name(); }
  bool direct() const { return direct_; }
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t retries() const { return retries_; }

 private:
  struct Job {
    const store::ExpertBlob* blob;
    std::byte* dst;
    uint64_t done_bytes = 0;
    int retries = 0;
    Callback callback;
  };
  void wait(bool all);
  void pump();
  void issue(uint64_t tag);
  void finish(uint64_t tag, const Error* error);

  std::shared_ptr<const ExpertStore> store_;
  ReaderOptions options_;
  int fd_ = -1;
  bool direct_ = false;
  std::unique_ptr<IoBackend> backend_;
  std::deque<uint64_t> queued_;
  std::unordered_map<uint64_t, Job> jobs_;
  int in_flight_ = 0;
  uint64_t next_tag_ = 1;
  uint64_t bytes_read_ = 0, retries_ = 0;
};

}  // namespace moe::offload
