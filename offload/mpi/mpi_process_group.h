#pragma once
// The process group of a run launched by mpirun (OpenMPI, or any launcher that sets PMI's
// variables): MPI initialised once, errors returned rather than fatal, every control exchange
// nonblocking and polled against --rank-timeout. Ranks other than 0 write nothing to the
// terminal (rank 0 talks to the user) except the message that ends a failed run.
#include <memory>

#include "offload/executor/process_group.h"

namespace moe::offload::mpi {

// A group when this process was launched by mpirun with more than one rank; null otherwise
// (MPI is then never initialised). Throws moe::Error(kIo) when MPI cannot start.
std::unique_ptr<ProcessGroup> start_mpi_if_launched(int* argc, char*** argv);

}  // namespace moe::offload::mpi
