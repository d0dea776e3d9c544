#pragma once
// The processes of one run as mpirun started them: which one this is, how many, and the
// control exchanges they make together (rank 0's sampled token to every rank, agreeing that
// every rank loaded). One process has none: process_group() is null. In MPI builds, main
// installs one when launched by mpirun with more than one rank (offload/mpi/).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "offload/executor/communicator.h"
#include "runtime/core/error.h"

namespace moe::offload {

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int node_rank() const = 0;  // among the ranks of this machine (which of its GPUs this rank takes)
  // Seconds any exchange waits for the other ranks before it fails (--rank-timeout).
  virtual void set_timeout(double seconds) = 0;
  virtual double timeout() const = 0;
  // `bytes` at `data` from `root` to every rank.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Every rank's outcome of a step ("" when it went well, else its error), on every rank; waits
  // up to `timeout` seconds.
  virtual std::vector<std::string> gather_outcomes(const std::string& mine, double timeout) = 0;
  // The expert results' exchange (MPI between CPU ranks). No collective: a rank may make it
  // inside a step that fails on another.
  virtual std::unique_ptr<RankCommunicator> make_communicator() = 0;
  // The end of a failed run: `agreed` errors (every rank knows them) are printed by rank 0 and
  // the process exits normally; any other is printed with this rank's number and ends the job
  // (MPI_Abort), since the other ranks may be waiting for this one.
  virtual void end_with_error(const std::string& message, bool agreed) = 0;
};

// Null in a process launched alone.
ProcessGroup* process_group();
void set_process_group(std::unique_ptr<ProcessGroup> group);  // main: once, and null at the end
inline int process_count() { return process_group() ? process_group()->size() : 1; }
inline bool is_rank_zero() { return !process_group() || process_group()->rank() == 0; }

// An error every rank raised together, naming the rank that failed first and its cause.
class AgreedError : public Error {
 public:
  using Error::Error;
};

// Runs `step` on every rank, then agrees: when it failed on any rank, every rank throws an
// AgreedError "rank R could not WHAT: cause" for the lowest failed rank (loading every expert
// may take minutes, so this waits ten rank timeouts). One process: runs `step`.
void on_every_rank(const char* what, const std::function<void()>& step);

}  // namespace moe::offload
