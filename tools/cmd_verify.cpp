// `moe verify STORE`: reads every embedded file, resident tensor and expert blob of an expert
// store and checks each against the manifest's checksum; lists the bad pieces and fails on any.
#include <fmt/format.h>

#include "offload/store/expert_store.h"
#include "runtime/core/error.h"
#include "runtime/core/progress.h"
#include "runtime/core/size_parse.h"
#include "tools/command.h"

namespace moe::tools {
namespace {

struct VerifyFlags {
  std::string store;
  bool json = false;
};

void verify(const VerifyFlags& f) {
  const auto store = offload::ExpertStore::open(f.store);
  ProgressBar bar("verifying", store->file_size());
  const auto v = store->verify([&](uint64_t done, uint64_t) { bar.set(done); });
  bar.finish();
  if (f.json) {
    print_json({{"store", f.store}, {"checked", v.checked}, {"unrecorded", v.unrecorded}, {"bytes", v.bytes},
                {"corrupt", v.corrupt}, {"ok", v.corrupt.empty()}});
  } else {
    for (const std::string& piece : v.corrupt) fmt::print("corrupt: {}\n", piece);
    fmt::print("{}: {} pieces checked ({}){}\n", f.store, v.checked, format_bytes(v.bytes),
               v.unrecorded ? fmt::format(", {} without a checksum (packed by an older moe)", v.unrecorded) : "");
  }
  MOE_CHECK(v.corrupt.empty(), ErrorCode::kCorrupt, "{} of {} pieces of {} are corrupt", v.corrupt.size(), v.checked, f.store);
}

void setup(CLI::App& app) {
  auto f = std::make_shared<VerifyFlags>();
  app.add_option("store", f->store, "expert store (moe pack -o)")->required()->check(CLI::ExistingFile);
  app.add_flag("--json", f->json, "print one JSON document");
  app.callback([f] { verify(*f); });
}

const CommandRegistration kVerify("", "verify", "Check every piece of an expert store against its checksum", setup);

}  // namespace
}  // namespace moe::tools
