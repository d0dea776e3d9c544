#pragma once
// A hardware profile of the machine the command runs on, for the CPU backend: the "GPU" is a
// virtual device on the CPU (its memory bandwidth: what a decode GEMV streams; its FLOP/s:
// a measured bf16 matmul), its host link and the stand-in NVMe tier are memcpy (the copy
// thread and the page-cache reads of mapped weights).
#include <string>

#include "placement/hardware/hardware_profile.h"

namespace moe::tools {

placement::HardwareProfile calibrate_this_machine();
std::string hardware_profile_yaml(const placement::HardwareProfile& p);

}  // namespace moe::tools
