#include "offload/store/expert_reader.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "offload/store/store_format.h"
#include "runtime/core/error.h"
#include "runtime/core/logging.h"

namespace moe::offload {
namespace {

std::string describe(const store::ExpertBlob& b) {
  return fmt::format("expert {} of layer {} ({})", b.expert(), b.layer(), b.format());
}

}  // namespace

uint64_t ExpertReader::read_bytes(const store::ExpertBlob& blob) { return align_up(blob.nbytes(), kBlobAlignment); }

ExpertReader::ExpertReader(std::shared_ptr<const ExpertStore> store, ReaderOptions options, BackendFactory make_backend,
                           std::span<const iovec> registered)
    : store_(std::move(store)), options_(std::move(options)) {
  MOE_CHECK(options_.queue_depth >= 1 && options_.queue_depth <= 4096, ErrorCode::kInvalidArgument,
            "queue depth {} is outside [1, 4096]", options_.queue_depth);
  const std::string path = store_->path().string();
  if (options_.direct) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    direct_ = fd_ >= 0;  // tmpfs and some filesystems refuse O_DIRECT: read through the cache
  }
  if (fd_ < 0) fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MOE_CHECK(fd_ >= 0, ErrorCode::kIo, "cannot open {}: {}", path, std::strerror(errno));

  std::string io = options_.io;
  const bool from_env = io.empty();
  if (io.empty())
    if (const char* env = std::getenv("MOE_IO"); env && *env) io = env;
  MOE_CHECK(io.empty() || io == "uring" || io == "pread", ErrorCode::kInvalidArgument, "{}I/O method '{}' is unknown (uring or pread)",
            from_env ? "MOE_IO: the " : "", io);
  if (make_backend) {
    backend_ = make_backend(fd_, options_.queue_depth);
  } else if (io != "pread") {
    try {
      backend_ = make_uring_backend(fd_, options_.queue_depth, registered);
    } catch (const Error& e) {
      if (io == "uring") throw;
      spdlog::warn("falling back to pread: {}", e.what());
    }
  }
  if (!backend_) backend_ = make_pread_backend(fd_, options_.queue_depth);
}

ExpertReader::~ExpertReader() {
  // Outstanding reads would write into buffers the caller may free: finish them first.
  try {
    if (in_flight_ > 0) wait_all();
  } catch (...) {
  }
  if (fd_ >= 0) ::close(fd_);
}

void ExpertReader::submit(ExpertKey key, std::string_view format, std::byte* dst, Callback done) {
  const store::ExpertBlob* blob = store_->blob(key, format);
  MOE_CHECK(blob != nullptr, ErrorCode::kNotFound, "{} has no expert {} of layer {} in format {}", store_->path().string(),
            key.expert, key.layer, format);
  MOE_CHECK(reinterpret_cast<uintptr_t>(dst) % kBlobAlignment == 0, ErrorCode::kInvalidArgument,
            "expert read buffers must be 4 KiB aligned");
  const uint64_t tag = next_tag_++;
  jobs_.emplace(tag, Job{blob, dst, 0, 0, std::move(done)});
  queued_.push_back(tag);
  pump();
}

void ExpertReader::pump() {
  while (in_flight_ < backend_->capacity() && !queued_.empty()) {
    const uint64_t tag = queued_.front();
    queued_.pop_front();
    issue(tag);
  }
}

void ExpertReader::issue(uint64_t tag) {
  Job& job = jobs_.at(tag);
  const uint64_t total = read_bytes(*job.blob);
  backend_->submit({job.blob->offset() + job.done_bytes, total - job.done_bytes, job.dst + job.done_bytes, tag});
  ++in_flight_;
}

void ExpertReader::finish(uint64_t tag, const Error* error) {
  Job job = std::move(jobs_.at(tag));
  jobs_.erase(tag);
  if (job.callback) job.callback({job.blob->layer(), job.blob->expert()}, job.blob->format(), error);
}

void ExpertReader::wait(bool all) {
  std::vector<IoCompletion> completions;
  const size_t pending_before = jobs_.size();
  while ((in_flight_ > 0 || !queued_.empty()) && (all || jobs_.size() == pending_before)) {
    pump();
    completions.clear();
    backend_->wait(completions);
    for (const IoCompletion& c : completions) {
      --in_flight_;
      Job& job = jobs_.at(c.tag);
      const uint64_t total = read_bytes(*job.blob);
      if (c.result == -EINTR || c.result == -EAGAIN) {
        ++retries_;
        if (++job.retries <= options_.max_retries) {
          queued_.push_front(c.tag);
          continue;
        }
        const Error e(ErrorCode::kIo, fmt::format("reading {} from {} kept failing: {}", describe(*job.blob),
                                                  store_->path().string(), std::strerror(int(-c.result))));
        finish(c.tag, &e);
        continue;
      }
      if (c.result < 0) {
        const Error e(ErrorCode::kIo, fmt::format("reading {} from {} failed: {}", describe(*job.blob), store_->path().string(),
                                                  std::strerror(int(-c.result))));
        finish(c.tag, &e);
        continue;
      }
      if (c.result == 0) {
        const Error e(ErrorCode::kCorrupt, fmt::format("{} ends before {} (truncated store?)", store_->path().string(),
                                                       describe(*job.blob)));
        finish(c.tag, &e);
        continue;
      }
      job.done_bytes += uint64_t(c.result);
      bytes_read_ += uint64_t(c.result);
      if (job.done_bytes < total && job.done_bytes < job.blob->nbytes()) {  // short read: ask for the rest
        queued_.push_front(c.tag);
        continue;
      }
      if (options_.verify_checksums && XXH64(job.dst, size_t(job.blob->nbytes()), 0) != job.blob->xxh64()) {
        const Error e(ErrorCode::kCorrupt, fmt::format("{} in {} fails its checksum", describe(*job.blob), store_->path().string()));
        finish(c.tag, &e);
        continue;
      }
      finish(c.tag, nullptr);
    }
  }
}

void ExpertReader::read(ExpertKey key, std::string_view format, std::byte* dst) {
  std::optional<Error> failure;
  submit(key, format, dst, [&](ExpertKey, const std::string&, const Error* e) {
    if (e) failure = *e;
  });
  wait_all();
  if (failure) throw *failure;
}

}  // namespace moe::offload
