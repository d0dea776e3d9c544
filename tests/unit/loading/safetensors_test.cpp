// Safetensors validation: valid files of every shape load, every malformed kind is a clear
// kCorrupt error (never a crash), and shard names cannot leave the folder.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "runtime/core/error.h"
#include "runtime/loading/safetensors.h"

namespace moe::loading {
namespace {

namespace fs = std::filesystem;

std::string with_length(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xFF);
  return out + header + data;
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("moe-st-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path_ / name, std::ios::binary) << bytes;
    return path_ / name;
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

SafetensorsHeader parse(const std::string& file) {
  return parse_safetensors_header(std::as_bytes(std::span(file.data(), file.size())), file.size(), "test.safetensors");
}

ErrorCode code_of(const std::string& file) {
  try {
    parse(file);
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;  // "no error", which the tests below never expect
}

TEST(Safetensors, ParsesAValidHeader) {
  const std::string file = with_length(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[4,12]},)"
      R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"z":{"dtype":"I8","shape":[0],"data_offsets":[12,12]}})",
      std::string(12, '\1'));
  const SafetensorsHeader h = parse(file);
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.metadata.at("format"), "pt");
}

TEST(Safetensors, RejectsEveryMalformedKind) {
  const auto t = [](const std::string& entries, size_t data) { return with_length("{" + entries + "}", std::string(data, '\0')); };
  EXPECT_EQ(code_of("1234"), ErrorCode::kCorrupt);                                         // shorter than 8 bytes
  EXPECT_EQ(code_of(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}"), ErrorCode::kCorrupt);  // huge N
  EXPECT_EQ(code_of(with_length("[]", "")), ErrorCode::kCorrupt);                           // not an object
  EXPECT_EQ(code_of(with_length(" {}", "")), ErrorCode::kCorrupt);                          // must start with '{'
  EXPECT_EQ(code_of(with_length("{\"a\":", "")), ErrorCode::kCorrupt);                      // truncated JSON
  EXPECT_EQ(code_of(std::string("\x10\0\0\0\0\0\0\0{}", 10)), ErrorCode::kCorrupt);         // N past the end
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]})", 8)),
            ErrorCode::kCorrupt);  // duplicate name
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]})", 6)),
            ErrorCode::kCorrupt);  // overlap
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]})", 8)), ErrorCode::kCorrupt);  // hole
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", 5)), ErrorCode::kCorrupt);  // trailing bytes
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]})", 4)), ErrorCode::kCorrupt);  // size mismatch
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,4]})", 4)),
            ErrorCode::kCorrupt);  // overflow
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]})", 4)), ErrorCode::kCorrupt);  // dtype
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", 4)), ErrorCode::kCorrupt);  // negative
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]})", 4)), ErrorCode::kCorrupt);  // reversed
  EXPECT_EQ(code_of(t(R"("a":{"dtype":"F32","shape":[1]})", 4)), ErrorCode::kCorrupt);                        // no offsets
  EXPECT_EQ(code_of(t(R"("__metadata__":{"k":1})", 0)), ErrorCode::kCorrupt);                                  // metadata type
}

TEST(Safetensors, FileTensorsViewTheMapping) {
  TempDir dir;
  float values[2] = {1.5f, -2.0f};
  const auto path = dir.write("model.safetensors",
                              with_length(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                          std::string(reinterpret_cast<const char*>(values), 8)));
  Tensor t;
  {
    const SafetensorsFile f = SafetensorsFile::open(path);
    t = f.tensor("w");
    EXPECT_THROW(f.tensor("missing"), Error);
  }
  ASSERT_EQ(t.numel(), 2);  // the mapping outlives the file object
  EXPECT_EQ(t.data<float>()[1], -2.0f);
}

TEST(Checkpoint, ShardedWithIndex) {
  TempDir dir;
  dir.write("a.safetensors", with_length(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')));
  const std::string header_b = R"({"y":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})";
  dir.write("b.safetensors", with_length(header_b, std::string(4, '\0')));
  dir.write("model.safetensors.index.json", R"({"metadata":{},"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})");
  const Checkpoint c = Checkpoint::open(dir.path());
  EXPECT_TRUE(c.has("x"));
  EXPECT_TRUE(c.has("y"));
  EXPECT_EQ(c.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(c.total_bytes(), 8u);
  EXPECT_EQ(c.location("y").offset, 8 + header_b.size());
  EXPECT_THROW(c.tensor("z"), Error);
}

TEST(Checkpoint, RejectsShardsOutsideTheFolderAndMissingShards) {
  TempDir dir;
  dir.write("model.safetensors.index.json", R"({"weight_map":{"x":"../escape.safetensors"}})");
  EXPECT_THROW(Checkpoint::open(dir.path()), Error);
  dir.write("model.safetensors.index.json", R"({"weight_map":{"x":"/etc/passwd"}})");
  EXPECT_THROW(Checkpoint::open(dir.path()), Error);
  dir.write("model.safetensors.index.json", R"({"weight_map":{"x":"absent.safetensors"}})");
  EXPECT_THROW(Checkpoint::open(dir.path()), Error);
  dir.write("a.safetensors", with_length(R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')));
  dir.write("model.safetensors.index.json", R"({"weight_map":{"x":"a.safetensors"}})");
  EXPECT_THROW(Checkpoint::open(dir.path()), Error);  // the index names a tensor its shard lacks
  TempDir empty;
  EXPECT_THROW(Checkpoint::open(empty.path()), Error);
}

TEST(Checkpoint, ReadsFilesWrittenByPythonSafetensors) {
  const fs::path fixture = fs::path(MOE_SOURCE_DIR) / "tests/fixtures/mixtral-sharded";
  const Checkpoint c = Checkpoint::open(fixture);
  EXPECT_TRUE(c.has("model.embed_tokens.weight"));
  EXPECT_EQ(c.tensor("model.embed_tokens.weight").dtype(), DType::kBF16);
  EXPECT_EQ(c.tensor("model.embed_tokens.weight").shape(), (Shape{256, 64}));
}

}  // namespace
}  // namespace moe::loading
