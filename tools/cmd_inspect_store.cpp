// `moe inspect STORE`: what an expert store holds, each format's size and error against bf16.
#include <fmt/format.h>

#include <map>

#include "offload/store/expert_store.h"
#include "offload/store/store_format.h"
#include "runtime/core/size_parse.h"
#include "tools/command.h"

namespace moe::tools {
namespace {

struct FormatStats {
  uint64_t blobs = 0, bytes = 0;
  double max_rel = 0, rms_sum = 0;
};

void inspect_store(const std::filesystem::path& path, const InspectOptions& options) {
  const auto store = offload::ExpertStore::open(path);
  const auto& m = store->manifest();
  std::map<std::string, FormatStats> formats;
  for (const auto& e : m.experts()) {
    FormatStats& s = formats[e.format()];
    ++s.blobs;
    s.bytes += e.nbytes();
    s.max_rel = std::max(s.max_rel, e.max_rel_error());
    s.rms_sum += e.rms_rel_error() * e.rms_rel_error();
  }
  uint64_t resident = 0;
  for (const auto& t : m.resident()) resident += t.nbytes();
  if (options.json) {
    nlohmann::json f = nlohmann::json::object();
    for (const auto& [name, s] : formats)
      f[name] = {{"blobs", s.blobs}, {"bytes", s.bytes}, {"max_rel_error", s.max_rel},
                 {"rms_rel_error", s.blobs ? std::sqrt(s.rms_sum / double(s.blobs)) : 0.0}};
    nlohmann::json files = nlohmann::json::array();
    for (const auto& file : m.files()) files.push_back(file.name());
    print_json({{"kind", "store"}, {"path", path.string()}, {"file_bytes", store->file_size()}, {"source", m.source()},
                {"layers", m.num_layers()}, {"experts_per_layer", m.num_experts()}, {"resident_tensors", m.resident_size()},
                {"resident_bytes", resident}, {"files", files}, {"formats", f}});
    return;
  }
  fmt::print("store     {} ({}), packed from {}\n", path.string(), format_bytes(store->file_size()), m.source());
  fmt::print("model     {} layers, {} experts per sparse layer\n", m.num_layers(), m.num_experts());
  fmt::print("resident  {} tensors, {}\n", m.resident_size(), format_bytes(resident));
  for (const auto& [name, s] : formats)
    fmt::print("{:<9} {} blobs, {}; error against the checkpoint: max {:.2e}, rms {:.2e} (relative)\n", name, s.blobs,
               format_bytes(s.bytes), s.max_rel, s.blobs ? std::sqrt(s.rms_sum / double(s.blobs)) : 0.0);
}

const InspectorRegistration kStoreInspector(
    "store", [](const std::filesystem::path& p) { return std::filesystem::is_regular_file(p) && offload::looks_like_store(p); },
    inspect_store);

}  // namespace
}  // namespace moe::tools
