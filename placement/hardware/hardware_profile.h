#pragma once
// A machine as the cost model sees it, read from YAML (or JSON) in configs/hardware/. Sizes are
// in GiB and bandwidths in GB/s in the file; in bytes and bytes per second here. Every section
// names the source of its numbers. A profile may start from another (`base: FILE`) and
// override some fields, which is how the multi-GPU variants are written. An optional `nodes`
// section describes several alike nodes (`gpu.count` GPUs each, joined inside by `peers`) and
// the network between them; without it a profile is one node, as before.
#include <filesystem>
#include <map>
#include <string>

namespace moe::placement {

enum class PeerLink { kNone, kPcie, kNvlink };

struct HardwareProfile {
  std::string name;
  std::string description;
  // GPUs (all alike).
  std::string gpu_model;
  int gpu_count = 0;  // in all: gpus_per_node() on each of node_count nodes
  double gpu_memory_bytes = 0;
  double gpu_memory_bandwidth = 0;  // HBM/GDDR, bytes/s
  double gpu_bf16_flops = 0;        // dense tensor-core peak, FLOP/s
  double host_to_device_bandwidth = 0;  // per GPU, bytes/s, pinned copies
  // A GPU's copy engines run beside its SMs; a CPU virtual device's copy thread shares the
  // cores and the memory bus with its compute, so there copies and compute add up.
  bool copies_overlap_compute = true;
  // Between GPUs.
  PeerLink peer_link = PeerLink::kNone;
  double peer_bandwidth = 0;  // per GPU, one direction, bytes/s
  // Between nodes (node_count > 1): each GPU reaches the other nodes through a NIC; `nics` of
  // them per node, each `nic_bandwidth` one way (a GPU uses one NIC at a time).
  int node_count = 1;
  std::string network;            // infiniband, roce or ethernet; empty on one node
  double nic_bandwidth = 0;       // per NIC, one direction, bytes/s
  int nics = 0;                   // per node
  double network_latency = 0;     // seconds: the fixed cost of an all-to-all phase across nodes
  int gpus_per_node() const { return node_count > 1 ? gpu_count / node_count : gpu_count; }
  // Host (each node's).
  double host_memory_bytes = 0;
  double host_memory_bandwidth = 0;
  int cpu_cores = 0;
  double cpu_flops = 0;  // f32, all cores
  // Storage.
  double nvme_read_bandwidth = 0;
  double nvme_iops = 0;
  std::map<std::string, std::string> sources;  // section -> where its numbers come from
};

// Throws moe::Error(kCorrupt) naming the file and field for malformed or impossible values
// (and for any text yaml-cpp cannot read as a profile: never another exception).
HardwareProfile parse_hardware_profile(const std::string& text, const std::string& source_name,
                                       const std::filesystem::path& base_dir = {});
// A path, or a bare name found in configs/hardware/ (with .yaml).
HardwareProfile load_hardware_profile(const std::string& path_or_name);

}  // namespace moe::placement
