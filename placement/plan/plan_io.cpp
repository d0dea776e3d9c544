#include "placement/plan/plan_io.h"

#include <google/protobuf/util/json_util.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <xxhash.h>

#include "runtime/core/error.h"
#include "runtime/core/output_path.h"
#include "runtime/core/read_file.h"

namespace moe::placement {
namespace {
// MOEPLAN2: the magic, the xxh64 of the encoded plan (8 bytes, little endian), the plan.
// MOEPLAN1 (before 2026-12-02) had no checksum; it is still read.
constexpr char kMagic[8] = {'M', 'O', 'E', 'P', 'L', 'A', 'N', '2'};
constexpr char kMagicV1[8] = {'M', 'O', 'E', 'P', 'L', 'A', 'N', '1'};
}

int64_t plan_expert_bytes(const PlacementPlan& plan, proto::Format format) {
  const int64_t params = plan.expert_bytes_bf16() / 2, scales = params / 128 * 4;  // as ModelShape::expert_bytes
  switch (format) {
    case proto::FORMAT_INT8: return params + scales;
    case proto::FORMAT_INT4: return params / 2 + scales;
    case proto::FORMAT_FP8: return plan.expert_bytes_fp8();
    case proto::FORMAT_MXFP4: return params / 2 + params / 32;
    default: return 2 * params;
  }
}

const char* tier_name(proto::Tier tier) {
  switch (tier) {
    case proto::TIER_GPU: return "gpu";
    case proto::TIER_HOST: return "host";
    case proto::TIER_NVME: return "nvme";
    default: return "?";
  }
}

void validate_plan(const PlacementPlan& p, const std::string& where) {
  MOE_CHECK(p.num_layers() > 0 && p.num_layers() <= 4096 && p.num_experts() > 0 && p.num_experts() <= (1 << 16),
            ErrorCode::kCorrupt, "{}: impossible model size ({} layers, {} experts)", where, p.num_layers(), p.num_experts());
  MOE_CHECK(p.devices_size() > 0 && p.devices_size() <= 1024, ErrorCode::kCorrupt, "{}: {} devices", where, p.devices_size());
  // Nodes: absent (0) in older plans, every device then on node 0; else node-major numbering.
  MOE_CHECK(p.nodes() >= 0 && p.nodes() <= 256 && p.devices_per_node() >= 0 && (p.nodes() == 0) == (p.devices_per_node() == 0),
            ErrorCode::kCorrupt, "{}: {} nodes of {} devices", where, p.nodes(), p.devices_per_node());
  MOE_CHECK(p.nodes() == 0 || int64_t(p.nodes()) * p.devices_per_node() == p.devices_size(), ErrorCode::kCorrupt,
            "{}: {} nodes of {} devices, but {} devices listed", where, p.nodes(), p.devices_per_node(), p.devices_size());
  for (int i = 0; i < p.devices_size(); ++i) {
    const int node = p.nodes() == 0 ? 0 : i / p.devices_per_node();
    MOE_CHECK(p.devices(i).node() == node, ErrorCode::kCorrupt, "{}: device {} claims node {}, its place says node {}", where, i,
              p.devices(i).node(), node);
  }
  MOE_CHECK(p.batch() > 0 && p.context() > 0, ErrorCode::kCorrupt, "{}: batch and context must be positive", where);
  MOE_CHECK(p.expert_bytes_bf16() > 0, ErrorCode::kCorrupt, "{}: expert size is missing", where);
  MOE_CHECK(p.experts_size() == p.num_layers() * p.num_experts(), ErrorCode::kCorrupt,
            "{}: places {} experts, the model has {} x {}", where, p.experts_size(), p.num_layers(), p.num_experts());
  std::set<std::pair<int, int>> seen;
  std::vector<int64_t> pinned(size_t(p.devices_size()), 0);
  for (const auto& e : p.experts()) {
    MOE_CHECK(e.layer() >= 0 && e.layer() < p.num_layers() && e.expert() >= 0 && e.expert() < p.num_experts(),
              ErrorCode::kCorrupt, "{}: expert ({}, {}) is outside the model", where, e.layer(), e.expert());
    MOE_CHECK(seen.insert({e.layer(), e.expert()}).second, ErrorCode::kCorrupt, "{}: expert ({}, {}) is placed twice", where,
              e.layer(), e.expert());
    MOE_CHECK(proto::Tier_IsValid(e.home()) && proto::Format_IsValid(e.format()), ErrorCode::kCorrupt,
              "{}: expert ({}, {}) has an unknown tier or format", where, e.layer(), e.expert());
    MOE_CHECK(e.format() != proto::FORMAT_FP8 || p.expert_bytes_fp8() > 0, ErrorCode::kCorrupt,
              "{}: expert ({}, {}) is fp8 but the plan has no fp8 expert size", where, e.layer(), e.expert());
    MOE_CHECK(e.devices_size() > 0, ErrorCode::kCorrupt, "{}: expert ({}, {}) names no device", where, e.layer(), e.expert());
    MOE_CHECK(e.home() == proto::TIER_GPU || e.devices_size() == 1, ErrorCode::kCorrupt,
              "{}: expert ({}, {}) is offloaded but names {} devices", where, e.layer(), e.expert(), e.devices_size());
    std::set<int> devices;
    for (int d : e.devices()) {
      MOE_CHECK(d >= 0 && d < p.devices_size() && devices.insert(d).second, ErrorCode::kCorrupt,
                "{}: expert ({}, {}) names device {} (of {}) or names it twice", where, e.layer(), e.expert(), d,
                p.devices_size());
    }
    const int64_t bytes = plan_expert_bytes(p, e.format());
    if (e.home() == proto::TIER_GPU)
      for (int d : e.devices()) pinned[size_t(d)] += bytes;
  }
  for (int i = 0; i < p.devices_size(); ++i) {
    const auto& d = p.devices(i);
    MOE_CHECK(d.device() == i, ErrorCode::kCorrupt, "{}: device {} is listed as {}", where, i, d.device());
    MOE_CHECK(d.cache_slots() >= 0 && d.cache_bytes() >= 0 && d.dense_bytes() >= 0 && d.kv_cache_bytes() >= 0 &&
                  d.workspace_bytes() >= 0,
              ErrorCode::kCorrupt, "{}: device {} has a negative size", where, i);
    MOE_CHECK(d.pinned_expert_bytes() == pinned[size_t(i)], ErrorCode::kCorrupt,
              "{}: device {} claims {} bytes of pinned experts, its experts take {}", where, i, d.pinned_expert_bytes(),
              pinned[size_t(i)]);
    const int64_t used = d.dense_bytes() + d.kv_cache_bytes() + d.workspace_bytes() + d.pinned_expert_bytes() + d.cache_bytes();
    MOE_CHECK(used <= d.memory_bytes(), ErrorCode::kCorrupt, "{}: device {} needs {} bytes, over its budget of {}", where, i,
              used, d.memory_bytes());
  }
}

void save_plan(const std::filesystem::path& path, const PlacementPlan& plan) {
  const std::filesystem::path partial = partial_path(path);
  {
    std::string encoded;
    MOE_CHECK(plan.SerializeToString(&encoded), ErrorCode::kInternal, "cannot encode the plan");
    const uint64_t sum = XXH64(encoded.data(), encoded.size(), 0);
    char checksum[8];
    for (int i = 0; i < 8; ++i) checksum[i] = char((sum >> (8 * i)) & 0xff);
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    MOE_CHECK(out.is_open(), ErrorCode::kIo, "cannot create {}", partial.string());
    out.write(kMagic, 8);
    out.write(checksum, 8);
    out.write(encoded.data(), std::streamsize(encoded.size()));
    out.close();
    MOE_CHECK(!out.fail(), ErrorCode::kIo, "cannot write {}", partial.string());
  }
  std::error_code ec;
  std::filesystem::rename(partial, path, ec);
  MOE_CHECK(!ec, ErrorCode::kIo, "cannot rename {} to {}: {}", partial.string(), path.string(), ec.message());
}

PlacementPlan load_plan(const std::filesystem::path& path) {
  const std::string bytes = read_file(path, "plan");
  const bool v1 = bytes.size() >= 8 && std::memcmp(bytes.data(), kMagicV1, 8) == 0;
  MOE_CHECK(v1 || (bytes.size() >= 16 && std::memcmp(bytes.data(), kMagic, 8) == 0), ErrorCode::kCorrupt,
            "{} is not a placement plan (bad magic)", path.string());
  const size_t body = v1 ? 8 : 16;
  if (!v1) {
    uint64_t sum = 0;
    for (int i = 0; i < 8; ++i) sum |= uint64_t(uint8_t(bytes[size_t(8 + i)])) << (8 * i);
    MOE_CHECK(XXH64(bytes.data() + body, bytes.size() - body, 0) == sum, ErrorCode::kCorrupt,
              "{}: the plan's checksum does not match (a corrupt or edited plan)", path.string());
  }
  PlacementPlan plan;
  MOE_CHECK(plan.ParseFromArray(bytes.data() + body, int(bytes.size() - body)), ErrorCode::kCorrupt, "{}: the plan is malformed",
            path.string());
  validate_plan(plan, path.string());
  return plan;
}

bool is_plan_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  in.read(head, 8);
  return in.gcount() == 8 && (std::memcmp(head, kMagic, 8) == 0 || std::memcmp(head, kMagicV1, 8) == 0);
}

std::string plan_to_json(const PlacementPlan& plan) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  const auto status = google::protobuf::util::MessageToJsonString(plan, &out, options);
  MOE_CHECK(status.ok(), ErrorCode::kInternal, "cannot print the plan as JSON");
  return out;
}

}  // namespace moe::placement
