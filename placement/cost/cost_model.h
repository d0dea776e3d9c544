#pragma once
// Time of the pieces of a decode step on a given machine: a roofline (the larger of bytes over
// bandwidth and FLOPs over peak) for compute, bandwidth plus a fixed latency for every copy.
// The planner ranks placements with it; the simulator replays traces with it.
#include "placement/cost/model_shape.h"
#include "placement/hardware/hardware_profile.h"

namespace moe::placement {

struct CostModel {
  CostModel(const ModelShape& shape, const HardwareProfile& hardware) : shape(shape), hw(hardware) {}

  // One layer's attention for `batch` sequences at `context` tokens each, on a GPU.
  double attention_seconds(int batch, int context) const;
  // The FFN work of a layer that is not routed: shared experts of a sparse layer, or the MLP of
  // a dense one.
  double unrouted_ffn_seconds(bool sparse_layer, int batch) const;
  // Embedding lookup, final norm and LM head for `batch` tokens, on a GPU.
  double head_seconds(int batch) const;
  // One routed expert applied to `tokens` tokens.
  double expert_gpu_seconds(ExpertFormat format, int tokens) const;
  double expert_cpu_seconds(ExpertFormat format, int tokens) const;
  // Moving one expert's bytes.
  double host_to_gpu_seconds(int64_t bytes) const;
  double nvme_to_host_seconds(int64_t bytes) const;
  // Expert-parallel all-to-all: one hidden row (bf16) per token and chosen expert travels from
  // the token's GPU to the expert's and back. One phase (dispatch or combine) takes the longer
  // of its two kinds of link, each a fixed cost plus its busiest end: inside a node the GPU
  // that sends or receives the most over the peer link; between nodes the GPU (its NIC) or the
  // node (all its NICs) that does.
  double row_bytes() const { return 2.0 * shape.hidden; }
  double intra_node_seconds(double busiest_gpu_bytes) const;
  double inter_node_seconds(double busiest_gpu_bytes, double busiest_node_bytes) const;

  ModelShape shape;
  HardwareProfile hw;
  static constexpr double kCopyLatency = 10e-6;      // a cudaMemcpyAsync's fixed cost
  static constexpr double kKernelLatency = 4e-6;     // a kernel launch (graphs remove most of it)
  static constexpr double kCollectiveLatency = 20e-6;  // an NCCL all-to-all's fixed cost (inside a node;
                                                       // across nodes the profile's network latency)
};

}  // namespace moe::placement
