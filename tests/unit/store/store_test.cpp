// The expert store: pack -> read back gives the checkpoint's bytes through io_uring and pread,
// every blob aligned and checksummed, quantised formats within their bounds, interrupted packs
// leave nothing, and every injected I/O fault is completed, retried or reported by name.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "offload/store/expert_reader.h"
#include "offload/store/expert_store.h"
#include "offload/store/store_format.h"
#include "offload/store/model_layout.h"
#include "offload/store/store_writer.h"
#include "runtime/core/error.h"
#include "runtime/core/scratch_dir.h"
#include "runtime/loading/model_config.h"
#include "runtime/loading/safetensors.h"
#include "runtime/model/model_loader.h"
#include "runtime/model/weights.h"

namespace moe::offload {
namespace {

// Whether a writer left a partial file of `path` behind (their names carry a unique suffix).
inline bool partial_left(const std::filesystem::path& path) {
  const std::string prefix = path.filename().string() + ".partial";
  for (const auto& e : std::filesystem::directory_iterator(path.parent_path()))
    if (e.path().filename().string().rfind(prefix, 0) == 0) return true;
  return false;
}

namespace fs = std::filesystem;
const fs::path kFixture = fs::path(MOE_SOURCE_DIR) / "tests/fixtures/qwen3_moe";

StoreLayout layout_of(const loading::ModelConfig& config) { return store_layout_for(config); }

struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : size(n), data(static_cast<std::byte*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096))) {}
  ~AlignedBuffer() { std::free(data); }
  size_t size;
  std::byte* data;
};

class Store : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("moe-store-test");
    config_ = new loading::ModelConfig(loading::load_model_config(kFixture));
    PackOptions options;
    options.extra_formats = {{DType::kI8, 32}, {DType::kI4, 16}};
    pack_store(kFixture, path(), layout_of(*config_), options);
  }
  static void TearDownTestSuite() {
    delete config_;
    delete dir_;
  }
  static fs::path path() { return dir_->path() / "model.moe"; }
  static inline ScratchDir* dir_ = nullptr;
  static inline loading::ModelConfig* config_ = nullptr;
};

TEST_F(Store, ManifestDescribesEveryBlobAligned) {
  const auto store = ExpertStore::open(path());
  const auto& m = store->manifest();
  EXPECT_EQ(m.num_layers(), 3);
  EXPECT_EQ(m.experts_size(), 3 * 6 * 3);  // layers x experts x formats
  EXPECT_EQ(m.formats(0), "bf16");
  for (const auto& e : m.experts()) {
    EXPECT_EQ(e.offset() % 4096, 0u);
    EXPECT_EQ(XXH64(store->mapped(e).data(), e.nbytes(), 0), e.xxh64());
  }
  EXPECT_TRUE(store->file("config.json").has_value());
  EXPECT_FALSE(partial_left(path()));
}

TEST_F(Store, ResidentAndNativeExpertTensorsAreTheCheckpointBytes) {
  const auto store = ExpertStore::open(path());
  const loading::Checkpoint checkpoint = loading::Checkpoint::open(kFixture);
  for (const std::string& name : checkpoint.names()) {
    ASSERT_TRUE(store->has_tensor(name)) << name;
    const Tensor a = checkpoint.tensor(name), b = store->tensor(name);
    ASSERT_EQ(a.shape(), b.shape()) << name;
    ASSERT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << name;
  }
}

TEST_F(Store, QuantisedFormatsStayWithinTheirBounds) {
  const auto store = ExpertStore::open(path());
  for (const auto& e : store->manifest().experts()) {
    if (e.format() == "int8:g32") {
      EXPECT_LE(e.max_rel_error(), 1.0 / 254 + 1e-6);
      EXPECT_GT(e.max_rel_error(), 0.0);
    } else if (e.format() == "int4:g16") {
      EXPECT_LE(e.max_rel_error(), 1.0 / 14 + 1e-6);
    }
  }
}

class ReaderKinds : public Store, public ::testing::WithParamInterface<std::string> {};

TEST_P(ReaderKinds, ReadsEqualTheMappedBytes) {
  const auto store = ExpertStore::open(path());
  ReaderOptions options;
  options.io = GetParam();
  options.queue_depth = 4;
  std::unique_ptr<ExpertReader> reader_owner;
  try {
    reader_owner = std::make_unique<ExpertReader>(store, options);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kUnsupported) GTEST_SKIP() << "io_uring is unavailable here: " << e.what();
    throw;
  }
  ExpertReader& reader = *reader_owner;
  std::vector<std::unique_ptr<AlignedBuffer>> buffers;
  int done = 0;
  for (const auto& e : store->manifest().experts()) {
    buffers.push_back(std::make_unique<AlignedBuffer>(ExpertReader::read_bytes(e)));
    reader.submit({e.layer(), e.expert()}, e.format(), buffers.back()->data, [&](ExpertKey, const std::string&, const Error* err) {
      EXPECT_EQ(err, nullptr) << (err ? err->what() : "");
      ++done;
    });
  }
  reader.wait_all();
  EXPECT_EQ(done, store->manifest().experts_size());
  for (int i = 0; i < store->manifest().experts_size(); ++i) {
    const auto& e = store->manifest().experts(i);
    EXPECT_EQ(std::memcmp(buffers[size_t(i)]->data, store->mapped(e).data(), e.nbytes()), 0) << i;
  }
  EXPECT_NE(reader.backend_name().find(GetParam() == "uring" ? "io_uring" : "pread"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Io, ReaderKinds, ::testing::Values("pread", "uring"));

// Reads one blob with faults injected on the listed request numbers.
std::string read_with_faults(const fs::path& store_path, std::vector<Fault> faults, int max_retries = 8) {
  const auto store = ExpertStore::open(store_path);
  ReaderOptions options;
  options.max_retries = max_retries;
  ExpertReader reader(store, options, [faults](int fd, int depth) {
    return make_fault_injecting_backend(make_pread_backend(fd, depth),
                                        [faults](uint64_t i) { return i < faults.size() ? faults[i] : Fault::kNone; });
  });
  const auto* blob = store->blob({1, 2}, "bf16");
  AlignedBuffer buffer(ExpertReader::read_bytes(*blob));
  try {
    reader.read({1, 2}, "bf16", buffer.data);
  } catch (const Error& e) {
    return e.what();
  }
  EXPECT_EQ(std::memcmp(buffer.data, store->mapped(*blob).data(), blob->nbytes()), 0);
  return "ok";
}

TEST_F(Store, ShortReadsAreCompleted) { EXPECT_EQ(read_with_faults(path(), {Fault::kShortRead, Fault::kShortRead}), "ok"); }

TEST_F(Store, TransientErrorsAreRetriedWithABound) {
  EXPECT_EQ(read_with_faults(path(), {Fault::kEintr, Fault::kEagain, Fault::kEintr}), "ok");
  const std::string e = read_with_faults(path(), std::vector<Fault>(20, Fault::kEagain), 3);
  EXPECT_NE(e.find("kept failing"), std::string::npos) << e;
  EXPECT_NE(e.find("expert 2 of layer 1"), std::string::npos) << e;
}

TEST_F(Store, PersistentErrorsAndCorruptionNameTheExpert) {
  const std::string eio = read_with_faults(path(), {Fault::kEio});
  EXPECT_NE(eio.find("expert 2 of layer 1 (bf16)"), std::string::npos) << eio;
  const std::string bad = read_with_faults(path(), {Fault::kCorrupt});
  EXPECT_NE(bad.find("fails its checksum"), std::string::npos) << bad;
}

TEST_F(Store, TruncatedOrForeignFilesAreClearErrors) {
  ScratchDir dir("moe-store-bad");
  std::ifstream in(path(), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir.path() / "cut.moe", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_THROW(ExpertStore::open(dir.path() / "cut.moe"), Error);
  std::string flipped = bytes;
  const StoreHeader h = decode_header(std::as_bytes(std::span(bytes.data(), bytes.size())), bytes.size(), "x");
  flipped[size_t(h.manifest_offset) + 3] ^= 0x11;
  std::ofstream(dir.path() / "flip.moe", std::ios::binary) << flipped;
  EXPECT_THROW(ExpertStore::open(dir.path() / "flip.moe"), Error);
  std::ofstream(dir.path() / "text.moe") << "not a store at all";
  EXPECT_FALSE(looks_like_store(dir.path() / "text.moe"));
  EXPECT_THROW(ExpertStore::open(dir.path() / "text.moe"), Error);
}

TEST_F(Store, AnInterruptedPackLeavesNoFile) {
  ScratchDir dir("moe-store-partial");
  StoreLayout layout = layout_of(*config_);
  layout.expert_names = [](int l, int e) {  // fails midway: layer 2's experts do not exist
    if (l == 2) return loading::ExpertTensorNames{"no.such.tensor", "x", "y"};
    return loading::ExpertTensorNames{fmt::format("model.layers.{}.mlp.experts.{}.gate_proj.weight", l, e),
                                      fmt::format("model.layers.{}.mlp.experts.{}.up_proj.weight", l, e),
                                      fmt::format("model.layers.{}.mlp.experts.{}.down_proj.weight", l, e)};
  };
  EXPECT_THROW(pack_store(kFixture, dir.path() / "out.moe", layout, {}), Error);
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST_F(Store, RunningFromTheStoreGivesTheSameLogitsBitForBit) {
  const std::vector<int32_t> prompt = {1, 17, 200, 33, 5, 250, 96};
  model::LoadedModel folder = model::load_model(kFixture);
  model::LoadedModel packed = model::load_model(path());
  EXPECT_TRUE(fs::exists(packed.files_dir / "config.json"));
  model::KvCache a = folder.transformer->make_cache(8), b = packed.transformer->make_cache(8);
  const auto x = folder.transformer->forward(prompt, a, model::LogitsWanted::kAll);
  const auto y = packed.transformer->forward(prompt, b, model::LogitsWanted::kAll);
  ASSERT_EQ(x.size(), y.size());
  EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0);
}

// A byte flipped anywhere in the data is caught the first time the piece is used, whatever the
// run's flags (a resident load reads experts through the mapping too), and verify() lists it.
TEST_F(Store, AFlippedByteIsCaughtOnFirstUseAndByVerify) {
  EXPECT_TRUE(ExpertStore::open(path())->verify().corrupt.empty());
  EXPECT_EQ(ExpertStore::open(path())->verify().unrecorded, 0);
  std::ifstream in(path(), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto original = ExpertStore::open(path());
  const auto& m = original->manifest();
  ScratchDir dir("moe-store-flip");
  const auto flipped_at = [&](uint64_t offset, const std::string& name) {
    std::string b = bytes;
    b[size_t(offset)] ^= 0x01;
    std::ofstream(dir.path() / name, std::ios::binary) << b;
    return dir.path() / name;
  };
  // A resident tensor, an expert blob of the native format, one of a quantised copy, an embedded file.
  const auto& tensor = m.resident(m.resident_size() / 2);
  const auto tensor_store = ExpertStore::open(flipped_at(tensor.offset() + tensor.nbytes() / 2, "tensor.moe"));
  EXPECT_THROW(tensor_store->tensor(tensor.name()), Error);
  EXPECT_THROW(model::load_model(dir.path() / "tensor.moe"), Error);
  const auto v = tensor_store->verify();
  ASSERT_EQ(v.corrupt.size(), 1u);
  EXPECT_EQ(v.corrupt[0], "tensor '" + tensor.name() + "'");
  const auto& blob = *original->blob({0, 1}, "bf16");
  const auto blob_store = ExpertStore::open(flipped_at(blob.offset() + 10, "blob.moe"));
  EXPECT_THROW(blob_store->tensor(blob.matrices(2).name()), Error);  // any matrix of the blob
  EXPECT_THROW(model::load_model(dir.path() / "blob.moe"), Error);  // resident: no offloading flags
  EXPECT_EQ(blob_store->verify().corrupt.size(), 1u);
  for (const auto& e : m.experts())
    if (e.format() != "bf16") {
      const auto q = ExpertStore::open(flipped_at(e.offset() + 5, "q.moe"));
      EXPECT_THROW(q->matrix(*q->blob({e.layer(), e.expert()}, e.format()), 0), Error);
      break;
    }
  const auto& file = m.files(0);
  const auto file_store = ExpertStore::open(flipped_at(file.offset(), "file.moe"));
  EXPECT_THROW(file_store->file(file.name()), Error);
}

}  // namespace
}  // namespace moe::offload
