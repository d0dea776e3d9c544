#pragma once
// The `moe` command is a set of subcommands, one thin file each. Each file registers itself
// with a static CommandRegistration; main() builds the CLI11 tree from the registry.
//
// Exit codes: 0 success, 1 runtime error (one sentence on stderr), 2 bad usage.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace moe::tools {

struct CommandRegistration {
  // parent: "" for a top-level command (`moe run`), or a group ("bench" for `moe bench io`).
  CommandRegistration(std::string parent, std::string name, std::string description,
                      std::function<void(CLI::App&)> setup);
};

struct CommandEntry {
  std::string parent, name, description;
  std::function<void(CLI::App&)> setup;  // adds options and sets app.callback
};
const std::vector<CommandEntry>& registered_commands();

// `moe inspect PATH` asks each inspector in turn whether it recognises PATH.
struct InspectOptions {
  bool json = false;
  std::string plot_path;  // --plot FILE.svg, for inspectors that draw
};
struct InspectorRegistration {
  InspectorRegistration(std::string name, std::function<bool(const std::filesystem::path&)> matches,
                        std::function<void(const std::filesystem::path&, const InspectOptions&)> run);
};
struct InspectorEntry {
  std::string name;
  std::function<bool(const std::filesystem::path&)> matches;
  std::function<void(const std::filesystem::path&, const InspectOptions&)> run;
};
const std::vector<InspectorEntry>& registered_inspectors();

// Prints a JSON document to stdout (pretty, newline-terminated).
void print_json(const nlohmann::json& doc);

}  // namespace moe::tools
