#include "placement/hardware/hardware_profile.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "runtime/core/error.h"
#include "runtime/core/read_file.h"

namespace moe::placement {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kGB = 1e9;

// Overlays `top` on `base`, recursively for maps.
YAML::Node merge(const YAML::Node& base, const YAML::Node& top) {
  if (!base.IsMap() || !top.IsMap()) return YAML::Clone(top);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : top) {
    const std::string key = kv.first.as<std::string>();
    out[key] = out[key] ? merge(out[key], kv.second) : YAML::Clone(kv.second);
  }
  return out;
}

YAML::Node load_with_base(const std::string& text, const std::string& name, const std::filesystem::path& dir, int depth) {
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(ErrorCode::kCorrupt, "{}: not valid YAML or JSON ({})", name, e.msg);
  }
  MOE_CHECK(node.IsMap(), ErrorCode::kCorrupt, "{}: a hardware profile must be a mapping", name);
  if (!node["base"]) return node;
  MOE_CHECK(node["base"].IsScalar(), ErrorCode::kCorrupt, "{}: `base` must name a profile file", name);
  MOE_CHECK(depth < 4, ErrorCode::kCorrupt, "{}: `base` profiles nest too deeply", name);
  const std::filesystem::path base_path = dir / node["base"].as<std::string>();
  YAML::Node base = load_with_base(read_file(base_path, "hardware profile"), base_path.string(), base_path.parent_path(), depth + 1);
  node.remove("base");
  return merge(base, node);
}

class Reader {
 public:
  Reader(const YAML::Node& root, std::string name) : root_(root), name_(std::move(name)) {}

  double number(const char* section, const char* key, double scale, bool positive = true) const {
    const YAML::Node n = root_[section][key];
    MOE_CHECK(n && n.IsScalar(), ErrorCode::kCorrupt, "{}: {}.{} is missing", name_, section, key);
    double v = 0;
    try {
      v = n.as<double>();
    } catch (const YAML::Exception&) {
      fail(ErrorCode::kCorrupt, "{}: {}.{} is not a number", name_, section, key);
    }
    MOE_CHECK(std::isfinite(v) && (positive ? v > 0 : v >= 0), ErrorCode::kCorrupt, "{}: {}.{} must be {}, not {}", name_,
              section, key, positive ? "positive" : "non-negative", v);
    return v * scale;
  }
  std::string text(const char* section, const char* key, const std::string& fallback = {}) const {
    const YAML::Node n = section ? root_[section][key] : root_[key];
    if (!n) return fallback;
    MOE_CHECK(n.IsScalar(), ErrorCode::kCorrupt, "{}: {}{}{} is not text", name_, section ? section : "", section ? "." : "",
              key);
    return n.as<std::string>();
  }
  bool has(const char* section, const char* key) const { return bool(root_[section][key]); }
  // Refuses a field the section does not have (a typo would otherwise read as absent).
  void only_fields(const char* section, std::initializer_list<const char*> fields) const {
    for (const auto& kv : root_[section]) {
      const std::string key = kv.first.IsScalar() ? kv.first.as<std::string>() : std::string("?");
      bool known = false;
      for (const char* f : fields) known |= key == f;
      MOE_CHECK(known, ErrorCode::kCorrupt, "{}: {}.{} is not a field of `{}`", name_, section, key, section);
    }
  }
  void require_section(const char* section) const {
    MOE_CHECK(root_[section] && root_[section].IsMap(), ErrorCode::kCorrupt, "{}: section `{}` is missing", name_, section);
    MOE_CHECK(root_[section]["source"], ErrorCode::kCorrupt, "{}: section `{}` does not name the source of its numbers",
              name_, section);
  }

 private:
  const YAML::Node& root_;
  std::string name_;
};

// Several alike nodes and the network between them: the optional `nodes` section. Without it
// (every profile before 2026-12-02) the profile is one node and means what it meant.
void parse_nodes(const YAML::Node& root, const Reader& r, const std::string& name, HardwareProfile& p) {
  if (!root["nodes"]) return;
  r.only_fields("nodes", {"count", "network", "nic_gb_per_s", "nics", "latency_us", "source"});  // a typo first
  r.require_section("nodes");
  const double count = r.number("nodes", "count", 1);
  MOE_CHECK(count == std::floor(count) && count <= 256, ErrorCode::kCorrupt,
            "{}: nodes.count must be a whole number from 1 to 256, not {}", name, count);
  p.node_count = int(count);
  p.sources["nodes"] = r.text("nodes", "source");
  if (p.node_count == 1) return;
  p.network = r.text("nodes", "network");
  MOE_CHECK(p.network == "infiniband" || p.network == "roce" || p.network == "ethernet", ErrorCode::kCorrupt,
            "{}: nodes.network must be infiniband, roce or ethernet, not '{}'", name, p.network);
  p.nic_bandwidth = r.number("nodes", "nic_gb_per_s", kGB);
  const double nics = r.has("nodes", "nics") ? r.number("nodes", "nics", 1) : double(p.gpu_count);
  MOE_CHECK(nics == std::floor(nics) && nics <= p.gpu_count, ErrorCode::kCorrupt,
            "{}: nodes.nics must be a whole number from 1 to gpu.count ({}), not {}", name, p.gpu_count, nics);
  p.nics = int(nics);
  p.network_latency = r.number("nodes", "latency_us", 1e-6, /*positive=*/false);
  p.gpu_count *= p.node_count;  // gpu.count is per node
}

HardwareProfile parse_profile(const std::string& text, const std::string& source_name, const std::filesystem::path& base_dir) {
  const YAML::Node root = load_with_base(text, source_name, base_dir, 0);
  const Reader r(root, source_name);
  for (const char* section : {"gpu", "peers", "host", "nvme"}) r.require_section(section);
  HardwareProfile p;
  p.name = r.text(nullptr, "name");
  MOE_CHECK(!p.name.empty(), ErrorCode::kCorrupt, "{}: `name` is missing", source_name);
  p.description = r.text(nullptr, "description");
  p.gpu_model = r.text("gpu", "model");
  const double count = r.number("gpu", "count", 1);
  MOE_CHECK(count == std::floor(count) && count <= 64, ErrorCode::kCorrupt, "{}: gpu.count must be a whole number up to 64",
            source_name);
  p.gpu_count = int(count);
  p.gpu_memory_bytes = r.number("gpu", "memory_gib", kGiB);
  p.gpu_memory_bandwidth = r.number("gpu", "memory_gb_per_s", kGB);
  p.gpu_bf16_flops = r.number("gpu", "bf16_tflops", 1e12);
  p.host_to_device_bandwidth = r.number("gpu", "host_link_gb_per_s", kGB);
  const std::string overlap = r.text("gpu", "copies_overlap_compute", "true");
  MOE_CHECK(overlap == "true" || overlap == "false", ErrorCode::kCorrupt, "{}: gpu.copies_overlap_compute must be true or false",
            source_name);
  p.copies_overlap_compute = overlap == "true";
  const std::string link = r.text("peers", "link", "none");
  if (link == "none") p.peer_link = PeerLink::kNone;
  else if (link == "pcie") p.peer_link = PeerLink::kPcie;
  else if (link == "nvlink") p.peer_link = PeerLink::kNvlink;
  else fail(ErrorCode::kCorrupt, "{}: peers.link must be none, pcie or nvlink, not '{}'", source_name, link);
  p.peer_bandwidth = r.number("peers", "gb_per_s", kGB, /*positive=*/false);
  MOE_CHECK(p.gpu_count == 1 || p.peer_link != PeerLink::kNone, ErrorCode::kCorrupt,
            "{}: {} GPUs need a peer link (pcie or nvlink)", source_name, p.gpu_count);
  MOE_CHECK(p.peer_link == PeerLink::kNone || p.peer_bandwidth > 0, ErrorCode::kCorrupt,
            "{}: peers.gb_per_s must be positive with a peer link", source_name);
  p.host_memory_bytes = r.number("host", "memory_gib", kGiB);
  p.host_memory_bandwidth = r.number("host", "memory_gb_per_s", kGB);
  p.cpu_cores = int(r.number("host", "cpu_cores", 1));
  p.cpu_flops = r.number("host", "cpu_gflops", 1e9);
  p.nvme_read_bandwidth = r.number("nvme", "read_gb_per_s", kGB);
  p.nvme_iops = r.number("nvme", "iops", 1);
  for (const char* section : {"gpu", "peers", "host", "nvme"}) p.sources[section] = r.text(section, "source");
  parse_nodes(root, r, source_name, p);
  return p;
}

}  // namespace

HardwareProfile parse_hardware_profile(const std::string& text, const std::string& source_name,
                                       const std::filesystem::path& base_dir) {
  try {
    return parse_profile(text, source_name, base_dir);
  } catch (const YAML::Exception& e) {  // a shape the checks above did not foresee: still one sentence
    fail(ErrorCode::kCorrupt, "{}: not a hardware profile ({})", source_name, e.msg);
  }
}

HardwareProfile load_hardware_profile(const std::string& path_or_name) {
  std::filesystem::path path(path_or_name);
  if (!std::filesystem::exists(path) && path.parent_path().empty()) {
    const std::filesystem::path named = std::filesystem::path(MOE_SOURCE_DIR) / "configs" / "hardware" / (path_or_name + ".yaml");
    MOE_CHECK(std::filesystem::exists(named), ErrorCode::kNotFound,
              "no hardware profile {} (a file, or a name in configs/hardware/)", path_or_name);
    path = named;
  }
  return parse_hardware_profile(read_file(path, "hardware profile"), path.string(), path.parent_path());
}

}  // namespace moe::placement
