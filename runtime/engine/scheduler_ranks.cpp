#include "runtime/engine/scheduler_ranks.h"

#include <cstring>

#include "runtime/core/error.h"

namespace moe::engine {
namespace {

// A broadcast is a header {kind, bytes of calls} and then the calls: records of a one-byte tag,
// the sequence id and, for a submission, what the scheduler's plans depend on (its prompt, new
// tokens and stop tokens; sampling stays rank 0's, whose tokens every rank takes).
enum Kind : uint64_t { kStep = 1, kHeartbeat = 2, kFinish = 3 };
enum Call : uint8_t { kSubmit = 1, kCancel = 2 };

struct Header {
  uint64_t kind = 0, bytes = 0;
};

template <class T>
void put(std::vector<uint8_t>& out, const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}

void put_tokens(std::vector<uint8_t>& out, const std::vector<int32_t>& tokens) {
  put(out, uint64_t(tokens.size()));
  const auto* p = reinterpret_cast<const uint8_t*>(tokens.data());
  out.insert(out.end(), p, p + tokens.size() * sizeof(int32_t));
}

class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& bytes) : bytes_(bytes) {}
  bool done() const { return at_ == bytes_.size(); }
  template <class T>
  T get() {
    MOE_CHECK(at_ + sizeof(T) <= bytes_.size(), ErrorCode::kInternal, "rank 0's scheduler calls end early");
    T value;
    std::memcpy(&value, bytes_.data() + at_, sizeof value);
    at_ += sizeof value;
    return value;
  }
  std::vector<int32_t> tokens() {
    const auto n = get<uint64_t>();
    MOE_CHECK(n <= (bytes_.size() - at_) / sizeof(int32_t), ErrorCode::kInternal, "rank 0's scheduler calls end early");
    std::vector<int32_t> out(n);
    std::memcpy(out.data(), bytes_.data() + at_, n * sizeof(int32_t));
    at_ += n * sizeof(int32_t);
    return out;
  }

 private:
  const std::vector<uint8_t>& bytes_;
  size_t at_ = 0;
};

// A follower's side of the step: rank 0's tokens replace its own.
class RankFollower : public StepAgreement {
 public:
  explicit RankFollower(offload::ProcessGroup& group) : group_(group) {}
  void submitted(SequenceId, const std::vector<int32_t>&, const model::GenerationOptions&) override {}
  void cancelled(SequenceId) override {}
  void stepping() override {}
  void agree(std::vector<int32_t>& sampled) override {
    if (!sampled.empty()) group_.broadcast(sampled.data(), sampled.size() * sizeof(int32_t), 0);
  }

 private:
  offload::ProcessGroup& group_;
};

void replay_calls(Scheduler& scheduler, const std::vector<uint8_t>& calls) {
  Reader in(calls);
  while (!in.done()) {
    const auto call = in.get<uint8_t>();
    const auto id = in.get<SequenceId>();
    if (call == kCancel) {
      scheduler.cancel(id);
      continue;
    }
    MOE_CHECK(call == kSubmit, ErrorCode::kInternal, "rank 0 sent an unknown scheduler call {}", int(call));
    model::GenerationOptions options;
    options.max_new_tokens = in.get<int32_t>();
    options.stop_tokens = in.tokens();
    std::vector<int32_t> prompt = in.tokens();
    const SequenceId here = scheduler.submit(std::move(prompt), options);
    MOE_CHECK(here == id, ErrorCode::kInternal, "rank 0's sequence {} is sequence {} here: the schedulers diverged", id, here);
  }
}

}  // namespace

void RankLeader::submitted(SequenceId id, const std::vector<int32_t>& prompt, const model::GenerationOptions& options) {
  put(calls_, uint8_t(kSubmit));
  put(calls_, id);
  put(calls_, int32_t(options.max_new_tokens));
  put_tokens(calls_, options.stop_tokens);
  put_tokens(calls_, prompt);
}

void RankLeader::cancelled(SequenceId id) {
  put(calls_, uint8_t(kCancel));
  put(calls_, id);
}

void RankLeader::send(uint64_t kind) {
  Header header{kind, calls_.size()};
  group_.broadcast(&header, sizeof header, 0);
  if (!calls_.empty()) group_.broadcast(calls_.data(), calls_.size(), 0);
  calls_.clear();
}

void RankLeader::stepping() { send(kStep); }

void RankLeader::agree(std::vector<int32_t>& sampled) {
  if (!sampled.empty()) group_.broadcast(sampled.data(), sampled.size() * sizeof(int32_t), 0);
}

void RankLeader::heartbeat() { send(kHeartbeat); }

void RankLeader::finish() { send(kFinish); }

void follow_rank_zero(Scheduler& scheduler, offload::ProcessGroup& group) {
  RankFollower follower(group);
  scheduler.set_agreement(&follower);
  for (;;) {
    Header header;
    group.broadcast(&header, sizeof header, 0);
    std::vector<uint8_t> calls(header.bytes);
    if (!calls.empty()) group.broadcast(calls.data(), calls.size(), 0);
    replay_calls(scheduler, calls);
    if (header.kind == kFinish) break;
    if (header.kind == kStep) {
      for (const SequenceEvent& e : scheduler.step())
        if (e.finished) scheduler.forget(e.id);
    } else {
      MOE_CHECK(header.kind == kHeartbeat, ErrorCode::kInternal, "rank 0 sent an unknown scheduler message {}", header.kind);
    }
  }
  scheduler.set_agreement(nullptr);
}

}  // namespace moe::engine
