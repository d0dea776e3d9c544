#include "placement/cost/cost_model.h"

#include <algorithm>

namespace moe::placement {
namespace {

double roofline(double bytes, double bandwidth, double flops, double peak) { return std::max(bytes / bandwidth, flops / peak); }

}  // namespace

double CostModel::attention_seconds(int batch, int context) const {
  const double weight_bytes = 2.0 * double(shape.attention_params);
  const double kv_bytes = double(batch) * context * double(shape.kv_bytes_per_token_layer());
  const double flops = 2.0 * batch * double(shape.attention_params) + 4.0 * batch * context * shape.num_heads * shape.head_dim;
  return kKernelLatency * 4 + roofline(weight_bytes + kv_bytes, hw.gpu_memory_bandwidth, flops, hw.gpu_bf16_flops);
}

double CostModel::unrouted_ffn_seconds(bool sparse_layer, int batch) const {
  const double params = double(sparse_layer ? shape.shared_expert_params : shape.dense_ffn_params);
  if (params == 0) return 0.0;
  return kKernelLatency * 3 + roofline(2.0 * params, hw.gpu_memory_bandwidth, 2.0 * batch * params, hw.gpu_bf16_flops);
}

double CostModel::head_seconds(int batch) const {
  const double bytes = 2.0 * double(shape.vocab) * shape.hidden;
  return kKernelLatency * 2 + roofline(bytes, hw.gpu_memory_bandwidth, 2.0 * batch * bytes / 2, hw.gpu_bf16_flops);
}

double CostModel::expert_gpu_seconds(ExpertFormat format, int tokens) const {
  return kKernelLatency * 3 + roofline(double(shape.expert_bytes(format)), hw.gpu_memory_bandwidth,
                                       2.0 * tokens * double(shape.expert_params), hw.gpu_bf16_flops);
}

double CostModel::expert_cpu_seconds(ExpertFormat format, int tokens) const {
  return roofline(double(shape.expert_bytes(format)), hw.host_memory_bandwidth, 2.0 * tokens * double(shape.expert_params),
                  hw.cpu_flops);
}

double CostModel::host_to_gpu_seconds(int64_t bytes) const { return kCopyLatency + double(bytes) / hw.host_to_device_bandwidth; }

double CostModel::nvme_to_host_seconds(int64_t bytes) const {
  const double requests = double(bytes) / double(1 << 20);  // 1 MiB reads
  return std::max(double(bytes) / hw.nvme_read_bandwidth, requests / hw.nvme_iops) + 80e-6;
}

double CostModel::intra_node_seconds(double busiest_gpu_bytes) const {
  return busiest_gpu_bytes > 0 ? busiest_gpu_bytes / hw.peer_bandwidth : 0.0;
}

double CostModel::inter_node_seconds(double busiest_gpu_bytes, double busiest_node_bytes) const {
  if (busiest_gpu_bytes <= 0) return 0.0;
  return std::max(busiest_gpu_bytes / hw.nic_bandwidth, busiest_node_bytes / (double(hw.nics) * hw.nic_bandwidth));
}

}  // namespace moe::placement
