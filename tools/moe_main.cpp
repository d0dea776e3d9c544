// The `moe` command: builds the CLI from the registered subcommands and turns library errors
// into one sentence and an exit code.
#include <google/protobuf/stubs/logging.h>

#include <cstdio>
#include <map>

#include "runtime/core/error.h"
#include "runtime/core/logging.h"
#include "tools/command.h"

int main(int argc, char** argv) {
  moe::init_logging();
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
  } catch (const moe::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  // Output that never arrived (a full disk, a closed pipe) is a failed run, not a success.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "error: cannot write the output to standard output\n");
    return 1;
  }
  return 0;
}
