#include "offload/store/io_backend.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <unordered_map>

#if MOE_HAVE_URING
#include <liburing.h>
#endif

#include "runtime/core/error.h"

namespace moe::offload {
namespace {

class PreadBackend final : public IoBackend {
 public:
  PreadBackend(int fd, int depth) : fd_(fd), depth_(depth) {}
  int capacity() const override { return depth_; }
  void submit(const IoRequest& r) override {
    const ssize_t n = ::pread(fd_, r.buffer, size_t(r.length), off_t(r.offset));
    ready_.push_back({r.tag, n >= 0 ? int64_t(n) : -int64_t(errno)});
  }
  void wait(std::vector<IoCompletion>& out) override {
    MOE_CHECK(!ready_.empty(), ErrorCode::kInternal, "wait with no read outstanding");
    out.insert(out.end(), ready_.begin(), ready_.end());
    ready_.clear();
  }
  std::string name() const override { return "pread"; }

 private:
  int fd_, depth_;
  std::deque<IoCompletion> ready_;
};

#if MOE_HAVE_URING
class UringBackend final : public IoBackend {
 public:
  UringBackend(int fd, int depth, std::span<const iovec> registered) : fd_(fd), depth_(depth) {
    const int rc = io_uring_queue_init(unsigned(depth), &ring_, 0);
    MOE_CHECK(rc == 0, ErrorCode::kUnsupported, "io_uring is unavailable: {}", std::strerror(-rc));
    if (!registered.empty()) {
      const int reg = io_uring_register_buffers(&ring_, registered.data(), unsigned(registered.size()));
      if (reg == 0) registered_.assign(registered.begin(), registered.end());  // else: plain reads still work
    }
  }
  ~UringBackend() override { io_uring_queue_exit(&ring_); }
  int capacity() const override { return depth_; }

  void submit(const IoRequest& r) override {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    MOE_CHECK(sqe != nullptr, ErrorCode::kInternal, "io_uring submission queue is full");
    const int index = registered_index(r);
    if (index >= 0) {
      io_uring_prep_read_fixed(sqe, fd_, r.buffer, unsigned(r.length), r.offset, index);
    } else {
      io_uring_prep_read(sqe, fd_, r.buffer, unsigned(r.length), r.offset);
    }
    io_uring_sqe_set_data64(sqe, r.tag);
    const int rc = io_uring_submit(&ring_);
    MOE_CHECK(rc >= 1, ErrorCode::kIo, "io_uring_submit failed: {}", std::strerror(rc < 0 ? -rc : EIO));
  }

  void wait(std::vector<IoCompletion>& out) override {
    io_uring_cqe* cqe = nullptr;
    int rc;
    do {
      rc = io_uring_wait_cqe(&ring_, &cqe);
    } while (rc == -EINTR);
    MOE_CHECK(rc == 0, ErrorCode::kIo, "io_uring_wait_cqe failed: {}", std::strerror(-rc));
    while (cqe) {
      out.push_back({io_uring_cqe_get_data64(cqe), int64_t(cqe->res)});
      io_uring_cqe_seen(&ring_, cqe);
      cqe = nullptr;
      if (io_uring_peek_cqe(&ring_, &cqe) != 0) break;
    }
  }
  std::string name() const override { return "io_uring"; }

 private:
  int registered_index(const IoRequest& r) const {
    for (size_t i = 0; i < registered_.size(); ++i) {
      const auto* base = static_cast<const std::byte*>(registered_[i].iov_base);
      if (r.buffer >= base && r.buffer + r.length <= base + registered_[i].iov_len) return int(i);
    }
    return -1;
  }

  int fd_, depth_;
  io_uring ring_{};
  std::vector<iovec> registered_;
};
#endif

class FaultInjectingBackend final : public IoBackend {
 public:
  FaultInjectingBackend(std::unique_ptr<IoBackend> inner, FaultPlan plan) : inner_(std::move(inner)), plan_(std::move(plan)) {}
  int capacity() const override { return inner_->capacity(); }

  void submit(const IoRequest& r) override {
    const Fault fault = plan_(count_++);
    switch (fault) {
      case Fault::kEio: injected_.push_back({r.tag, -EIO}); return;
      case Fault::kEintr: injected_.push_back({r.tag, -EINTR}); return;
      case Fault::kEagain: injected_.push_back({r.tag, -EAGAIN}); return;
      case Fault::kShortRead: {
        IoRequest shorter = r;
        shorter.length = r.length > 4096 ? (r.length / 2) / 4096 * 4096 : r.length / 2;
        if (shorter.length == 0) shorter.length = 1;
        inner_->submit(shorter);
        return;
      }
      case Fault::kCorrupt: corrupt_[r.tag] = r.buffer; break;
      case Fault::kNone: break;
    }
    inner_->submit(r);
  }

  void wait(std::vector<IoCompletion>& out) override {
    if (!injected_.empty()) {
      out.insert(out.end(), injected_.begin(), injected_.end());
      injected_.clear();
      return;
    }
    const size_t first = out.size();
    inner_->wait(out);
    for (size_t i = first; i < out.size(); ++i) {
      const auto it = corrupt_.find(out[i].tag);
      if (it == corrupt_.end()) continue;
      if (out[i].result > 0) it->second[out[i].result / 2] ^= std::byte{0x5A};
      corrupt_.erase(it);
    }
  }
  std::string name() const override { return inner_->name() + "+faults"; }

 private:
  std::unique_ptr<IoBackend> inner_;
  FaultPlan plan_;
  uint64_t count_ = 0;
  std::vector<IoCompletion> injected_;
  std::unordered_map<uint64_t, std::byte*> corrupt_;
};

}  // namespace

std::unique_ptr<IoBackend> make_pread_backend(int fd, int queue_depth) {
  return std::make_unique<PreadBackend>(fd, queue_depth);
}

std::unique_ptr<IoBackend> make_uring_backend(int fd, int queue_depth, std::span<const iovec> registered) {
#if MOE_HAVE_URING
  return std::make_unique<UringBackend>(fd, queue_depth, registered);
#else
  (void)fd, (void)queue_depth, (void)registered;
  fail(ErrorCode::kUnsupported, "this build has no io_uring (liburing was not found)");
#endif
}

std::unique_ptr<IoBackend> make_fault_injecting_backend(std::unique_ptr<IoBackend> inner, FaultPlan plan) {
  return std::make_unique<FaultInjectingBackend>(std::move(inner), std::move(plan));
}

}  // namespace moe::offload
