#include "offload/mpi/mpi_check.h"

#include <chrono>
#include <thread>

#include "runtime/core/error.h"

namespace moe::offload::mpi {

void check(int status, const char* what) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(status, text, &length) != MPI_SUCCESS) length = 0;
  fail(ErrorCode::kIo, "{} failed: {}", what, length > 0 ? std::string(text, size_t(length)) : "an unknown MPI error");
}

void wait(MPI_Request& request, double timeout, const char* what) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout));
  for (int polls = 0;; ++polls) {
    int done = 0;
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    if ((polls & 63) == 0 && clock::now() > deadline)
      fail(ErrorCode::kIo, "{} waited {:.0f} s for the other ranks (--rank-timeout): one of them died or hangs", what, timeout);
    // Spin through a decode step's exchange (microseconds), then give the core away: the rank
    // being waited for may need it, and a yield loop would still take half of it.
    if (polls > 4000) std::this_thread::sleep_for(std::chrono::microseconds(polls > 20000 ? 200 : 20));
    else if (polls > 500) std::this_thread::yield();
  }
}

}  // namespace moe::offload::mpi
