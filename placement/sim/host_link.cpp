#include "placement/sim/host_link.h"

#include <algorithm>

namespace moe::placement {

void HostLink::start_before(double now) {
  std::erase_if(running_, [&](const Copy& c) { return c.end <= now; });
  size_t started = 0;
  while (started < queued_.size() && queued_[started].start < now) {
    started_end_ = queued_[started].end;
    if (queued_[started].end > now) running_.push_back(queued_[started]);
    ++started;
  }
  queued_.erase(queued_.begin(), queued_.begin() + long(started));
}

void HostLink::schedule() {
  double clock = started_end_;
  for (Copy& c : queued_) {
    c.start = std::max(clock, c.source_ready);
    c.end = c.start + c.seconds;
    clock = c.end;
  }
}

double HostLink::demand(double now, double source_ready, double seconds) {
  start_before(now);
  started_end_ = std::max({now, started_end_, source_ready}) + seconds;
  const double lands = started_end_;
  schedule();
  return lands;
}

double HostLink::prefetch(double now, offload::ExpertKey key, double source_ready, double seconds) {
  start_before(now);
  queued_.push_back({key, source_ready, seconds, 0, 0});
  schedule();
  return queued_.back().end;
}

double HostLink::landing(double now, offload::ExpertKey key) {
  start_before(now);
  for (const auto* copies : {&running_, &queued_})
    for (const Copy& c : *copies)
      if (c.key == key) return c.end;
  return -1;
}

double HostLink::cancel(double now, offload::ExpertKey key) {
  start_before(now);
  for (auto it = queued_.begin(); it != queued_.end(); ++it)
    if (it->key == key) {
      const double unused = it->seconds;
      queued_.erase(it);
      schedule();
      return unused;
    }
  for (auto it = running_.begin(); it != running_.end(); ++it)
    if (it->key == key) {
      // Stopped between chunks: the link is free at once when nothing was committed after it.
      double unused = 0;
      if (it->end == started_end_) {
        unused = it->end - std::max(now, it->start);
        started_end_ = std::max(now, it->start);
        schedule();
      }
      running_.erase(it);
      return unused;
    }
  return 0;
}

}  // namespace moe::placement
