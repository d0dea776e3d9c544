// The simulator's host link: demand copies go ahead of prefetches not yet started, a queued
// prefetch cancelled gives back all its time, a running one the rest, a landed one nothing.
#include <gtest/gtest.h>

#include "placement/sim/host_link.h"

namespace moe::placement {
namespace {

TEST(HostLink, DemandGoesAheadOfQueuedPrefetchesAndCancelsGiveTimeBack) {
  HostLink link;
  const offload::ExpertKey a{1, 0}, b{1, 1}, c{2, 0};
  EXPECT_DOUBLE_EQ(link.demand(0, 0, 1), 1);
  EXPECT_DOUBLE_EQ(link.prefetch(0, a, 0, 2), 3);
  EXPECT_DOUBLE_EQ(link.prefetch(0, b, 0, 2), 5);
  // At 0.5 the first demand copy runs; a and b have not started: the new demand goes first.
  EXPECT_DOUBLE_EQ(link.demand(0.5, 0.5, 1), 2);
  EXPECT_DOUBLE_EQ(link.landing(0.5, a), 4);
  EXPECT_DOUBLE_EQ(link.landing(0.5, b), 6);
  EXPECT_DOUBLE_EQ(link.cancel(1.5, b), 2);  // queued: all of it
  EXPECT_DOUBLE_EQ(link.landing(1.5, b), -1);
  EXPECT_DOUBLE_EQ(link.cancel(3, a), 1);  // running since 2: the second it had left
  EXPECT_DOUBLE_EQ(link.demand(3, 3, 1), 4);  // the link is free at once
  EXPECT_DOUBLE_EQ(link.prefetch(5, c, 5, 1), 6);
  EXPECT_DOUBLE_EQ(link.cancel(7, c), 0);  // landed: nothing to give back
  EXPECT_DOUBLE_EQ(link.landing(7, c), -1);
}

TEST(HostLink, APrefetchWaitsForItsSourceAndDemandsKeepTheirOrder) {
  HostLink link;
  const offload::ExpertKey a{0, 3};
  EXPECT_DOUBLE_EQ(link.prefetch(0, a, 4, 1), 5);  // its NVMe read ends at 4
  EXPECT_DOUBLE_EQ(link.demand(1, 1, 1), 2);
  EXPECT_DOUBLE_EQ(link.demand(1, 1, 1), 3);     // behind the first demand
  EXPECT_DOUBLE_EQ(link.landing(1, a), 5);       // still waits for its source
  EXPECT_DOUBLE_EQ(link.demand(4.5, 4.5, 1), 6);  // a started at 4: it cannot be passed
}

}  // namespace
}  // namespace moe::placement
