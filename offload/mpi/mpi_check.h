#pragma once
// Checked MPI calls and waits that end: every call's status becomes a moe::Error naming the
// call, and a nonblocking collective is polled until it completes or its deadline passes, so no
// rank waits forever for one that died or hangs.
#include <mpi.h>

namespace moe::offload::mpi {

// Throws moe::Error(kIo) naming `what` and MPI's own words when `status` is not MPI_SUCCESS.
void check(int status, const char* what);

// Polls `request` (MPI_Test) until it completes; past `timeout` seconds throws moe::Error(kIo)
// naming `what` (the boundary adds the rank). Spins briefly, then yields and sleeps: under
// --oversubscribe the ranks it waits for may need the core.
void wait(MPI_Request& request, double timeout, const char* what);

}  // namespace moe::offload::mpi
