#include "tools/command.h"

#include <cstdio>

namespace moe::tools {

static std::vector<CommandEntry>& command_registry() {
  static std::vector<CommandEntry> registry;
  return registry;
}

static std::vector<InspectorEntry>& inspector_registry() {
  static std::vector<InspectorEntry> registry;
  return registry;
}

CommandRegistration::CommandRegistration(std::string parent, std::string name, std::string description,
                                         std::function<void(CLI::App&)> setup) {
  command_registry().push_back({std::move(parent), std::move(name), std::move(description), std::move(setup)});
}

const std::vector<CommandEntry>& registered_commands() { return command_registry(); }

InspectorRegistration::InspectorRegistration(
    std::string name, std::function<bool(const std::filesystem::path&)> matches,
    std::function<void(const std::filesystem::path&, const InspectOptions&)> run) {
  inspector_registry().push_back({std::move(name), std::move(matches), std::move(run)});
}

const std::vector<InspectorEntry>& registered_inspectors() { return inspector_registry(); }

void print_json(const nlohmann::json& doc) {
  // Generated text may end inside a UTF-8 character: such bytes become U+FFFD, not an error.
  const std::string text = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace moe::tools
