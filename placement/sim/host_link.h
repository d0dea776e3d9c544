#pragma once
// One GPU's host link as the engine's transfer engine (offload/executor/transfer_engine.h)
// drives it: copies run one at a time; a demand copy goes ahead of every prefetch that has not
// started, and a cancelled prefetch gives back the time it had not used (a queued one all of
// it, the running one the rest). Times are seconds of the simulation's clock.
#include <vector>

#include "offload/cache/expert_key.h"

namespace moe::placement {

class HostLink {
 public:
  // A demand copy of `seconds` whose source is ready at `source_ready`, asked at `now`;
  // returns when it lands. Queued prefetches move behind it.
  double demand(double now, double source_ready, double seconds);
  // A prefetch of `key` queued behind everything asked so far; returns when it would land now
  // (a later demand copy may delay it: landing() says when it lands then).
  double prefetch(double now, offload::ExpertKey key, double source_ready, double seconds);
  // When `key`'s prefetch lands, or -1 when no prefetch of it is queued or running at `now`.
  double landing(double now, offload::ExpertKey key);
  // Stops `key`'s prefetch at `now` if it has not landed; returns the seconds of copying it
  // did not do (0 when it had landed or is unknown).
  double cancel(double now, offload::ExpertKey key);

 private:
  struct Copy {
    offload::ExpertKey key;
    double source_ready = 0, seconds = 0, start = 0, end = 0;
  };
  void start_before(double now);  // prefetches that have started by `now` can no longer move
  void schedule();                // the queued prefetches' times, from started_end_ on

  double started_end_ = 0;        // when the copies that have started (or are committed) end
  std::vector<Copy> running_;     // started prefetches that may still be copying
  std::vector<Copy> queued_;      // prefetches not started, in the order asked
};

}  // namespace moe::placement
