// `moe bench calibrate`: measures this machine and writes a hardware profile for plan and sim.
#include <fmt/format.h>

#include <fstream>

#include "runtime/core/error.h"
#include "tools/calibrate.h"
#include "tools/command.h"

namespace moe::tools {
namespace {

void setup(CLI::App& app) {
  auto output = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  app.add_option("-o,--output", *output, "profile to write (YAML); printed when absent");
  app.add_flag("--json", *json, "print the measurements as JSON");
  app.callback([output, json] {
    const auto p = calibrate_this_machine();
    const std::string yaml = hardware_profile_yaml(p);
    if (!output->empty()) {
      std::ofstream out(*output);
      out << yaml;
      out.close();
      MOE_CHECK(!out.fail(), ErrorCode::kIo, "cannot write {}", *output);
    }
    if (*json) {
      print_json({{"profile", *output}, {"memory_bytes_per_second", p.gpu_memory_bandwidth},
                  {"bf16_flops", p.gpu_bf16_flops}, {"copy_bytes_per_second", p.host_to_device_bandwidth}});
    } else if (output->empty()) {
      fmt::print("{}", yaml);
    } else {
      fmt::print("{}: read {:.1f} GB/s, matmul {:.1f} GFLOP/s, copy {:.1f} GB/s\n", *output, p.gpu_memory_bandwidth / 1e9,
                 p.gpu_bf16_flops / 1e9, p.host_to_device_bandwidth / 1e9);
    }
  });
}

const CommandRegistration kCalibrate("bench", "calibrate", "Measure this machine and write a hardware profile", setup);

}  // namespace
}  // namespace moe::tools
