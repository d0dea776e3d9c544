#pragma once
// One scheduler on every rank under mpirun (`moe serve`): rank 0's leads and the others follow.
// Before each of its steps the leader broadcasts what was submitted and cancelled since the last
// one; a follower applies the same calls to its own scheduler, in the same order, and steps it;
// inside the step every rank takes rank 0's sampled tokens. Since a scheduler's decisions
// depend only on those calls and tokens, every rank plans the same batch and runs the same
// forward, whose experts' exchange then pairs up. While rank 0 idles it sends heartbeats, so a
// follower's wait is bounded by the rank timeout yet never ends an idle server; at the end it
// sends the followers home.
#include <cstdint>
#include <vector>

#include "offload/executor/process_group.h"
#include "runtime/engine/scheduler.h"

namespace moe::engine {

class RankLeader : public StepAgreement {
 public:
  explicit RankLeader(offload::ProcessGroup& group) : group_(group) {}
  void submitted(SequenceId id, const std::vector<int32_t>& prompt, const model::GenerationOptions& options) override;
  void cancelled(SequenceId id) override;
  void stepping() override;
  void agree(std::vector<int32_t>& sampled) override;
  // Idle: the calls recorded so far, and proof of life. Call at least every rank timeout / 4.
  void heartbeat();
  // The followers return from follow_rank_zero (after the last step).
  void finish();

 private:
  void send(uint64_t kind);
  offload::ProcessGroup& group_;
  std::vector<uint8_t> calls_;  // since the last broadcast, encoded
};

// A rank other than 0: follows rank 0's scheduler with `scheduler` until rank 0 finishes. Throws
// moe::Error when rank 0 goes silent past the rank timeout or its calls fail here.
void follow_rank_zero(Scheduler& scheduler, offload::ProcessGroup& group);

}  // namespace moe::engine
