// The `moe` command: builds the CLI from the registered subcommands and turns library errors
// into one sentence and an exit code.
#include <google/protobuf/stubs/logging.h>

#include <cstdio>
#include <map>

#include "offload/executor/process_group.h"
#include "runtime/core/error.h"
#include "runtime/core/logging.h"
#include "tools/command.h"
#if MOE_HAVE_MPI
#include "offload/mpi/mpi_process_group.h"
#endif

namespace {

// One sentence and exit 1. Under mpirun an error every rank raised together is printed once by
// rank 0; any other is printed with its rank and ends the whole job (the other ranks may be
// waiting for this one).
int report(const char* message, bool agreed) {
  std::fflush(stdout);
  if (moe::offload::ProcessGroup* group = moe::offload::process_group()) {
    group->end_with_error(message, agreed);
    moe::offload::set_process_group(nullptr);
  } else {
    std::fprintf(stderr, "error: %s\n", message);
  }
  return 1;
}

int run(int argc, char** argv);

}  // namespace

int main(int argc, char** argv) {
  moe::init_logging();
#if MOE_HAVE_MPI
  try {
    moe::offload::set_process_group(moe::offload::mpi::start_mpi_if_launched(&argc, &argv));
  } catch (const moe::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
#endif
  const int code = run(argc, argv);
  moe::offload::set_process_group(nullptr);  // MPI_Finalize, every rank having finished
  return code;
}

namespace {

int run(int argc, char** argv) {
  // Malformed protobuf input is reported once, as our own error; protobuf's log lines would
  // only repeat it on stderr.
  google::protobuf::SetLogHandler(nullptr);
  CLI::App app{"moe: run Mixture-of-Experts models larger than GPU memory, profile their routing, "
               "and plan where every expert lives.",
               "moe"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "moe 0.1.0");

  std::map<std::string, CLI::App*> groups;
  for (const auto& cmd : moe::tools::registered_commands()) {
    if (!cmd.parent.empty() && !groups.count(cmd.parent)) {
      CLI::App* group = app.add_subcommand(cmd.parent, cmd.parent + " commands");
      group->require_subcommand(1);
      groups[cmd.parent] = group;
    }
  }
  for (const auto& cmd : moe::tools::registered_commands()) {
    if (cmd.parent.empty() && groups.count(cmd.name)) continue;
    CLI::App* parent = cmd.parent.empty() ? &app : groups[cmd.parent];
    CLI::App* sub = parent->add_subcommand(cmd.name, cmd.description);
    cmd.setup(*sub);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  } catch (const moe::offload::AgreedError& e) {
    return report(e.what(), true);
  } catch (const moe::Error& e) {
    return report(e.what(), false);
  } catch (const std::bad_alloc&) {
    return report("out of memory", false);
  } catch (const std::exception& e) {
    return report(e.what(), false);
  }
  // Output that never arrived (a full disk, a closed pipe) is a failed run, not a success.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    return report("cannot write the output to standard output", false);
  }
  return 0;
}

}  // namespace
