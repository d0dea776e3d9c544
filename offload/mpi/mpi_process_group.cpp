#include "offload/mpi/mpi_process_group.h"

#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>

#include "offload/mpi/mpi_check.h"
#include "offload/mpi/mpi_communicator.h"

namespace moe::offload::mpi {
namespace {

constexpr size_t kOutcomeBytes = 480;  // one sentence per rank

int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

// mpirun ends the other ranks with SIGTERM when one dies or aborts: rank 0 says so itself, in
// one line, beside the launcher's own report of which rank and why.
void say_ended(int) {
  static const char kLine[] = "error: rank 0: the run was ended by mpirun: another rank stopped (mpirun's report names it)\n";
  (void)!write(STDERR_FILENO, kLine, sizeof kLine - 1);
  _exit(1);
}

class MpiProcessGroup final : public ProcessGroup {
 public:
  MpiProcessGroup() {
    check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    // Control messages on a communicator of their own, apart from the exchanges.
    check(MPI_Comm_dup(MPI_COMM_WORLD, &control_), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(control_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    // The exchanges' own, made now: a communicator made later, inside a step that may fail on
    // one rank, would be a collective the failed rank never joins.
    check(MPI_Comm_dup(MPI_COMM_WORLD, &exchanges_), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(exchanges_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    MPI_Comm node = MPI_COMM_NULL;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
    check(MPI_Comm_rank(node, &node_rank_), "MPI_Comm_rank (node)");
    MPI_Comm_free(&node);
    errors_ = dup(STDERR_FILENO);
    if (rank_ == 0) {
      std::signal(SIGTERM, say_ended);
    } else if (const int null = open("/dev/null", O_WRONLY); null >= 0) {
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
      close(null);
    }
  }
  ~MpiProcessGroup() override {
    MPI_Comm_free(&exchanges_);
    MPI_Comm_free(&control_);
    MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int node_rank() const override { return node_rank_; }
  void set_timeout(double seconds) override { timeout_ = seconds; }
  double timeout() const override { return timeout_; }

  void broadcast(void* data, size_t bytes, int root) override {
    MOE_CHECK(bytes <= size_t(INT32_MAX), ErrorCode::kInvalidArgument, "a broadcast of {} bytes", bytes);
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Ibcast(data, int(bytes), MPI_BYTE, root, control_, &request), "MPI_Ibcast");
    wait(request, timeout_, "a broadcast from rank 0");
  }

  std::vector<std::string> gather_outcomes(const std::string& mine, double timeout) override {
    std::vector<char> own(kOutcomeBytes, '\0'), all(kOutcomeBytes * size_t(size_));
    std::memcpy(own.data(), mine.data(), std::min(mine.size(), kOutcomeBytes - 1));
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Iallgather(own.data(), int(kOutcomeBytes), MPI_CHAR, all.data(), int(kOutcomeBytes), MPI_CHAR, control_, &request),
          "MPI_Iallgather");
    wait(request, timeout, "agreeing on every rank's outcome");
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r) out.emplace_back(all.data() + size_t(r) * kOutcomeBytes);  // NUL-terminated
    return out;
  }

  std::unique_ptr<RankCommunicator> make_communicator() override {
    return std::make_unique<MpiCommunicator>(exchanges_, [this] { return timeout_; });
  }

  void end_with_error(const std::string& message, bool agreed) override {
    if (agreed) {
      if (rank_ == 0) dprintf(errors_, "error: %s\n", message.c_str());
      // Every rank now exits 1; mpirun may end rank 0 for another's exit before it finishes, and
      // the line has been said.
      std::signal(SIGTERM, SIG_DFL);
      return;
    }
    dprintf(errors_, "error: rank %d: %s\n", rank_, message.c_str());
    std::signal(SIGTERM, SIG_DFL);  // this rank's own line said it
    MPI_Abort(MPI_COMM_WORLD, 1);  // the others may wait for this rank: end them all
  }

 private:
  int rank_ = 0, size_ = 1, node_rank_ = 0;
  MPI_Comm control_ = MPI_COMM_NULL, exchanges_ = MPI_COMM_NULL;
  double timeout_ = 60;
  int errors_ = STDERR_FILENO;  // the terminal's stderr, kept where ranks > 0 silence theirs
};

}  // namespace

std::unique_ptr<ProcessGroup> start_mpi_if_launched(int* argc, char*** argv) {
  if (launched_ranks() <= 1) return nullptr;
  int provided = 0;
  // Serialized: the thread that steps the model calls MPI (in `moe serve`, the scheduler's own).
  check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    fail(ErrorCode::kUnsupported, "this MPI does not let the stepping thread call it (MPI_THREAD_SERIALIZED)");
  }
  return std::make_unique<MpiProcessGroup>();
}

}  // namespace moe::offload::mpi
