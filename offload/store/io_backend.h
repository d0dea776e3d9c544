#pragma once
// Asynchronous positional reads of one file: io_uring (O_DIRECT capable, registered buffers)
// or plain pread. A fault-injecting wrapper stands under the reader in tests.
#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace moe::offload {

struct IoRequest {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::byte* buffer = nullptr;
  uint64_t tag = 0;
};

struct IoCompletion {
  uint64_t tag = 0;
  int64_t result = 0;  // bytes read, or -errno
};

class IoBackend {
 public:
  virtual ~IoBackend() = default;
  // At most capacity() requests may be outstanding.
  virtual int capacity() const = 0;
  virtual void submit(const IoRequest& request) = 0;
  // Blocks until at least one completion is ready, then appends every ready one.
  virtual void wait(std::vector<IoCompletion>& out) = 0;
  virtual std::string name() const = 0;
};

// Reads with pread(2) at submit time (capacity is the queue depth, for symmetry).
std::unique_ptr<IoBackend> make_pread_backend(int fd, int queue_depth);
// io_uring with `queue_depth` entries; requests whose buffer lies inside one of `registered`
// use fixed-buffer reads. Throws moe::Error(kUnsupported) when io_uring is unavailable.
std::unique_ptr<IoBackend> make_uring_backend(int fd, int queue_depth, std::span<const iovec> registered = {});

// What the fault injector does to one request.
enum class Fault { kNone, kShortRead, kEio, kEintr, kEagain, kCorrupt };
using FaultPlan = std::function<Fault(uint64_t request_index)>;
std::unique_ptr<IoBackend> make_fault_injecting_backend(std::unique_ptr<IoBackend> inner, FaultPlan plan);

}  // namespace moe::offload
