// `moe pack`: a Hugging Face folder as one expert store file.
#include <fmt/format.h>

#include "offload/store/store_writer.h"
#include "runtime/core/error.h"
#include "runtime/core/size_parse.h"
#include "runtime/core/output_path.h"
#include "runtime/loading/model_config.h"
#include "runtime/model/weights.h"
#include "offload/store/model_layout.h"
#include "tools/command.h"
#include "tools/numeric_flags.h"

namespace moe::tools {
namespace {

struct Flags {
  std::string model, out, formats = "bf16";
  int group_size = 128;
  bool json = false;
};

void run(const Flags& f) {
  refuse_overwriting(f.out, {f.model});
  const loading::ModelConfig config = loading::load_model_config(f.model);
  const offload::StoreLayout layout = offload::store_layout_for(config);
  offload::PackOptions options;
  size_t start = 0;
  while (start <= f.formats.size()) {
    const size_t comma = std::min(f.formats.find(',', start), f.formats.size());
    const std::string name = f.formats.substr(start, comma - start);
    start = comma + 1;
    if (name == "bf16" || name == "native") continue;  // always stored: the checkpoint's own bytes
    DType dtype;
    MOE_CHECK(parse_dtype(name, &dtype) && (dtype == DType::kI8 || dtype == DType::kI4), ErrorCode::kInvalidArgument,
              "format '{}' is not one of bf16, int8, int4", name);
    options.extra_formats.push_back({dtype, f.group_size});
  }
  const offload::PackSummary s = offload::pack_store(f.model, f.out, layout, options);
  if (f.json) {
    nlohmann::json formats = nlohmann::json::object();
    for (const auto& [name, bytes] : s.format_bytes) formats[name] = bytes;
    print_json({{"store", f.out}, {"file_bytes", s.file_bytes}, {"resident_bytes", s.resident_bytes},
                {"unused_bytes", s.unused_bytes}, {"expert_bytes", formats}});
    return;
  }
  fmt::print("wrote {} ({}): resident {}", f.out, format_bytes(s.file_bytes), format_bytes(s.resident_bytes));
  if (s.unused_bytes > 0) fmt::print(", {} of unused layers left out", format_bytes(s.unused_bytes));
  for (const auto& [name, bytes] : s.format_bytes) fmt::print(", {} experts {}", name, format_bytes(bytes));
  fmt::print("\n");
}

void setup(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  app.add_option("--model,-m", f->model, "Hugging Face model folder")->required();
  app.add_option("-o,--output", f->out, "store file to write")->required();
  app.add_option("--formats", f->formats, "expert formats: bf16 (always), int8, int4, comma-separated")->capture_default_str();
  app.add_option("--group-size", f->group_size, "values per quantisation scale")->capture_default_str()->check(whole_number(1, 1 << 16));
  app.add_flag("--json", f->json, "print one JSON document");
  app.callback([f] { run(*f); });
}

const CommandRegistration kPack("", "pack", "Pack a model folder into one expert store file", setup);

}  // namespace
}  // namespace moe::tools
