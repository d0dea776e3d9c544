// Router traces: the file format round trip, the importers (on the shared real traces and on
// hand-written vLLM and CSV files), statistics with known answers, and malformed input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "placement/trace/importers.h"
#include "placement/trace/trace_io.h"
#include "placement/trace/trace_stats.h"
#include "runtime/core/error.h"

namespace moe::placement {
namespace {

// Whether a writer left a partial file of `path` behind (their names carry a unique suffix).
inline bool partial_left(const std::filesystem::path& path) {
  const std::string prefix = path.filename().string() + ".partial";
  for (const auto& e : std::filesystem::directory_iterator(path.parent_path()))
    if (e.path().filename().string().rfind(prefix, 0) == 0) return true;
  return false;
}

const std::filesystem::path kShared = std::filesystem::path(MOE_SOURCE_DIR) / ".." / "shared" / "data" / "traces" / "mixtral-8x7b";

std::filesystem::path temp_path(const std::string& name) {
  // One folder a process: ctest runs these tests as separate processes side by side.
  const auto dir = std::filesystem::temp_directory_path() / ("moe_trace_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir / name;
}

void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Trace small_trace() {
  Trace t;
  t.model = {"tiny", 3, 4, 0};
  t.tokens.push_back({0, 0, {{0, {1, 2}, {0.75f, 0.25f}}, {1, {3}, {1.0f}}, {2, {0, 1, 2}, {0.5f, 0.3f, 0.2f}}}});
  t.tokens.push_back({0, 1, {{0, {1}, {}}, {2, {2}, {1.0f}}}});  // a gap at layer 1, no weights at layer 0
  t.tokens.push_back({7, 0, {{0, {0, 3}, {0.5f, 0.5f}}, {1, {3, 0}, {0.6f, 0.4f}}, {2, {1}, {1.0f}}}});
  t.gaps = 1;
  return t;
}

void expect_same(const Trace& a, const Trace& b) {
  EXPECT_EQ(a.model.name, b.model.name);
  EXPECT_EQ(a.model.num_layers, b.model.num_layers);
  EXPECT_EQ(a.model.num_experts, b.model.num_experts);
  EXPECT_EQ(a.gaps, b.gaps);
  ASSERT_EQ(a.tokens.size(), b.tokens.size());
  for (size_t i = 0; i < a.tokens.size(); ++i) {
    EXPECT_EQ(a.tokens[i].sequence_id, b.tokens[i].sequence_id);
    EXPECT_EQ(a.tokens[i].position, b.tokens[i].position);
    ASSERT_EQ(a.tokens[i].layers.size(), b.tokens[i].layers.size());
    for (size_t l = 0; l < a.tokens[i].layers.size(); ++l) {
      EXPECT_EQ(a.tokens[i].layers[l].layer, b.tokens[i].layers[l].layer);
      EXPECT_EQ(a.tokens[i].layers[l].experts, b.tokens[i].layers[l].experts);
      EXPECT_EQ(a.tokens[i].layers[l].weights, b.tokens[i].layers[l].weights);
    }
  }
}

TEST(TraceFile, RoundTripsWithAndWithoutZstd) {
  for (auto compression : {TraceCompression::kNone, TraceCompression::kZstd}) {
    const auto path = temp_path(compression == TraceCompression::kZstd ? "rt.zst.trace" : "rt.trace");
    write_trace(path, small_trace(), "test", compression);
    EXPECT_TRUE(is_trace_file(path));
    EXPECT_FALSE(partial_left(path));
    expect_same(read_trace(path), small_trace());
    TraceReader reader(path);
    EXPECT_EQ(reader.source(), "test");
  }
}

TEST(TraceFile, WriterLeavesNothingWhenAbandonedOrGivenBadTokens) {
  const auto path = temp_path("abandoned.trace");
  std::filesystem::remove(path);
  {
    TraceWriter w(path, {"m", 2, 4, 2}, "test");
    w.write({0, 0, {{0, {1, 2}, {}}}});
    EXPECT_THROW(w.write({0, 1, {{5, {1}, {}}}}), Error);   // layer outside the model
    EXPECT_THROW(w.write({0, 1, {{1, {4}, {}}}}), Error);   // expert outside the model
    EXPECT_THROW(w.write({0, 1, {{1, {2, 2}, {}}}}), Error);  // repeated expert
    EXPECT_THROW(w.write({0, 1, {{1, {2}, {0.1f, 0.2f}}}}), Error);  // weights not one per expert
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(partial_left(path));
}

TEST(TraceFile, RejectsMalformedFilesWithOneSentence) {
  const auto good = temp_path("good.trace");
  for (auto compression : {TraceCompression::kNone, TraceCompression::kZstd}) {
    write_trace(good, small_trace(), "test", compression);
    const std::string bytes = read_file(good);
    // Every truncation either reads a prefix of the tokens cleanly (at a record boundary of
    // the raw stream) or fails with kCorrupt; never a crash or a wrong token.
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      try {
        const Trace t = read_trace_bytes(bytes.substr(0, cut), "cut");
        EXPECT_EQ(compression, TraceCompression::kNone) << "a truncated zstd stream read cleanly at " << cut;
        EXPECT_LE(t.tokens.size(), 3u);
      } catch (const Error& e) {
        EXPECT_TRUE(e.code() == ErrorCode::kCorrupt || e.code() == ErrorCode::kUnsupported) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
      }
    }
    // Flipped bytes past the file header: rejected (every record carries a checksum), or for a
    // compressed stream the very same trace; never a crash or a silently different trace.
    for (size_t i = 16; i < bytes.size(); ++i) {
      std::string bad = bytes;
      bad[i] = char(bad[i] ^ 0x5A);
      try {
        const Trace t = read_trace_bytes(bad, "flipped");
        // A zstd frame has header bits that do not change its content: the same trace is fine.
        EXPECT_EQ(compression, TraceCompression::kZstd) << "a flip at byte " << i << " went unnoticed";
        expect_same(t, small_trace());
      } catch (const Error&) {
      }
    }
  }
  EXPECT_THROW(read_trace_bytes("NOTATRACE-------", "magic"), Error);
  EXPECT_THROW(read_trace(temp_path("missing.trace")), Error);
  std::string huge("MOETRACE\x01\0\0\0\0\0\0\0", 16);
  huge += "\xff\xff\xff\xff\x0f";  // a record claiming 4 GiB
  try {
    read_trace_bytes(huge, "huge");
    FAIL() << "accepted a 4 GiB record";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  }
}

TEST(Importers, SharedMixtralTracesWithTheirGaps) {
  if (!std::filesystem::exists(kShared)) GTEST_SKIP() << "../shared/data is not present";
  ImportReport report;
  const Trace two = import_jsonl(kShared / "humaneval_2_routing.jsonl", {}, &report);
  EXPECT_EQ(report.records, 10779);  // the README's counts
  EXPECT_EQ(two.tokens.size(), 338u);
  EXPECT_EQ(two.model.num_layers, 32);
  EXPECT_EQ(two.model.num_experts, 8);
  EXPECT_EQ(two.model.top_k, 2);
  EXPECT_EQ(two.gaps, 338 * 32 - 10779);
  EXPECT_EQ(report.restarted_positions, 0);
  const Trace one = import_jsonl(kShared / "humaneval_routing.jsonl", {}, &report);
  EXPECT_EQ(one.tokens.size(), 83u);
  EXPECT_EQ(one.gaps, 83 * 32 - 2579);
  // routing_raw: a prefill pass (positions 0..134), then decode steps that all say position 0.
  const Trace raw = import_jsonl(kShared / "routing_raw.jsonl", {}, &report);
  EXPECT_EQ(report.records, 6777);
  EXPECT_GT(report.restarted_positions, 0);
  int64_t decisions = 0;
  for (const auto& t : raw.tokens) decisions += int64_t(t.layers.size());
  EXPECT_EQ(decisions, 6777);
  EXPECT_EQ(raw.gaps, int64_t(raw.tokens.size()) * 32 - 6777);
  // Gating probabilities are kept and each decision's pair sums to one.
  for (const auto& l : two.tokens[0].layers) EXPECT_NEAR(l.weights[0] + l.weights[1], 1.0, 1e-5);
  // And the import survives the trace file.
  const auto path = temp_path("shared.trace");
  write_trace(path, two, "shared");
  expect_same(read_trace(path), two);
}

TEST(Importers, JsonlErrorsNameTheLine) {
  const auto p = temp_path("bad.jsonl");
  write_file(p, "{\"problem_id\": 0, \"layer\": 0, \"token_idx\": 0, \"experts\": [1, 2]}\n{\"problem_id\": 0, \"layer\": 1}\n");
  try {
    import_jsonl(p, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":2:"), std::string::npos) << e.what();
  }
  write_file(p, "not json\n");
  EXPECT_THROW(import_jsonl(p, {}), Error);
  write_file(p, "{\"problem_id\": 0, \"layer\": -1, \"token_idx\": 0, \"experts\": [1]}\n");
  EXPECT_THROW(import_jsonl(p, {}), Error);
  write_file(p, "{\"problem_id\": 0, \"layer\": 0, \"token_idx\": 0, \"experts\": [1], \"gating_probs\": [0.5, 0.5]}\n");
  EXPECT_THROW(import_jsonl(p, {}), Error);
  write_file(p, "");
  EXPECT_THROW(import_jsonl(p, {}), Error);
  // A negative position, and gates that are no probability, are refused saying so.
  const auto message = [&](const std::string& bytes) {
    write_file(p, bytes);
    try {
      import_jsonl(p, {});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  // Only empty choices: the expert count is unknown unless given.
  const std::string empty = "{\"problem_id\": 0, \"layer\": 0, \"token_idx\": 0, \"experts\": []}\n";
  EXPECT_NE(message(empty).find("no routing decision names an expert"), std::string::npos) << message(empty);
  EXPECT_EQ(import_jsonl(p, {"m", 0, 8, 0}).model.num_experts, 8);
  EXPECT_NE(message("{\"problem_id\": 0, \"layer\": 0, \"token_idx\": -3, \"experts\": [1]}\n").find("position -3 is negative"),
            std::string::npos);
  for (const char* gate : {"-0.5", "1e39"})
    EXPECT_NE(message(std::string("{\"problem_id\": 0, \"layer\": 0, \"token_idx\": 0, \"experts\": [1], \"gating_probs\": [") +
                      gate + "]}\n")
                  .find("not a finite non-negative number"),
              std::string::npos)
        << gate;
}

// dims: the shape as the header writes it, "2, 3, 2, ".
std::string npy_of_shape(const std::string& dtype, const std::string& dims, const std::string& data) {
  std::string header = "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += char(header.size() & 0xFF);
  out += char(header.size() >> 8);
  return out + header + data;
}

std::string npy(const std::string& dtype, const std::vector<int64_t>& shape, const std::string& data) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  return npy_of_shape(dtype, dims, data);
}

TEST(Importers, VllmRoutedExpertsFromNpyAndJson) {
  // [tokens=2, layers=3, top_k=2]
  const std::vector<int32_t> ids = {0, 1, 2, 3, 4, 5, 7, 6, 5, 4, 3, 2};
  std::string data(ids.size() * 4, '\0');
  std::memcpy(data.data(), ids.data(), data.size());
  const auto p = temp_path("routed.npy");
  write_file(p, npy("<i4", {2, 3, 2}, data));
  const Trace t = import_vllm(p, {"m", 0, 8, 0});
  ASSERT_EQ(t.tokens.size(), 2u);
  EXPECT_EQ(t.model.num_layers, 3);
  EXPECT_EQ(t.model.num_experts, 8);
  EXPECT_EQ(t.tokens[1].layers[0].experts, (std::vector<int32_t>{7, 6}));
  EXPECT_EQ(t.tokens[0].layers[2].experts, (std::vector<int32_t>{4, 5}));
  const auto j = temp_path("routed.json");
  write_file(j, "{\"routed_experts\": [[[0,1],[2,3],[4,5]],[[7,6],[5,4],[3,2]]]}");
  expect_same(import_vllm(j, {"m", 0, 8, 0}), t);
  write_file(p, npy("<i4", {2, 3, 2}, data.substr(0, 20)));  // truncated data
  EXPECT_THROW(import_vllm(p, {}), Error);
  write_file(p, npy("<f4", {2, 3, 2}, data));
  EXPECT_THROW(import_vllm(p, {}), Error);
  write_file(p, npy("<i4", {12}, data));
  EXPECT_THROW(import_vllm(p, {}), Error);
  write_file(j, "[[[0,1],[2]],[[1,2],[3,4]]]");  // ragged
  EXPECT_THROW(import_vllm(j, {}), Error);
  // A shape that is not numbers, or overflows, is named (was "stoll").
  for (const std::string dims : {"2, x, 2", "99999999999999999999, 3, 2"}) {
    write_file(p, npy_of_shape("<i4", dims, data));
    try {
      import_vllm(p, {});
      ADD_FAILURE() << dims << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the .npy shape has"), std::string::npos) << e.what();
    }
  }
}

TEST(Importers, CsvGateMatrices) {
  const auto p = temp_path("gates.csv");
  write_file(p,
             "layer_id,token_id,expert_0,expert_1,expert_2,expert_3\n"
             "0,0,0.1,0.6,0.3,0.0\n"
             "1,0,0.0,0.0,0.2,0.8\n"
             "0,1,0.25,0.25,0.25,0.25\n");
  const Trace top2 = import_csv_gates(p, {"m", 0, 0, 2});
  EXPECT_EQ(top2.model.num_experts, 4);
  EXPECT_EQ(top2.model.top_k, 2);
  ASSERT_EQ(top2.tokens.size(), 2u);
  EXPECT_EQ(top2.tokens[0].layers[0].experts, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(top2.tokens[0].layers[1].experts, (std::vector<int32_t>{3, 2}));
  EXPECT_EQ(top2.tokens[1].layers[0].experts, (std::vector<int32_t>{0, 1}));  // ties: lower id first
  EXPECT_EQ(top2.gaps, 1);
  const Trace nonzero = import_csv_gates(p, {"m", 0, 0, 0});
  EXPECT_EQ(nonzero.tokens[0].layers[0].experts, (std::vector<int32_t>{1, 2, 0}));
  EXPECT_EQ(nonzero.tokens[1].layers[0].experts.size(), 4u);
  EXPECT_EQ(nonzero.model.top_k, 0);  // varies
  write_file(p, "layer_id,token_id,expert_0\n0,0,abc\n");
  EXPECT_THROW(import_csv_gates(p, {}), Error);
  write_file(p, "layer,token,e0\n");
  EXPECT_THROW(import_csv_gates(p, {}), Error);
  write_file(p, "layer_id,token_id,expert_0,expert_1\n0,0,0.5\n");
  EXPECT_THROW(import_csv_gates(p, {}), Error);
  write_file(p, "layer_id,token_id,expert_0,expert_1\n0,0,0.5,0.5\n0,0,0.5,0.5\n");
  EXPECT_THROW(import_csv_gates(p, {}), Error);  // the same (layer, token) twice
  write_file(p, "layer_id,token_id,expert_0,expert_1\n0,0,0.5,-0.5\n");
  EXPECT_THROW(import_csv_gates(p, {}), Error);  // a negative gate
}

TEST(Importers, LayerFromAFileOrFolderName) {
  EXPECT_EQ(layer_from_path("routing/layer_3/gates.csv"), 3);
  EXPECT_EQ(layer_from_path("mixtral_gates_layer12.csv"), 12);
  EXPECT_EQ(layer_from_path("Layer-7.csv"), 7);
  EXPECT_EQ(layer_from_path("layer_1/gates_layer4.csv"), 4);  // the file's own name first
  EXPECT_EQ(layer_from_path("routing/gates.csv"), std::nullopt);
  EXPECT_EQ(layer_from_path("players.csv"), std::nullopt);
}

// The fixture: one folder per layer, layer_id 0 in every file (was: a one-layer trace).
TEST(Importers, PerLayerCsvFolders) {
  const auto dir = std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures" / "per_layer_gates";
  ImportReport report;
  const Trace t = import_csv_gate_files({dir / "layer_0", dir / "layer_1", dir / "layer_2"}, {"m", 0, 0, 2}, &report);
  EXPECT_EQ(report.records, 9);
  EXPECT_EQ(t.model.num_layers, 3);
  EXPECT_EQ(t.model.num_experts, 4);
  EXPECT_EQ(t.gaps, 0);
  ASSERT_EQ(t.tokens.size(), 3u);
  EXPECT_EQ(t.tokens[2].position, 5);  // token ids kept
  ASSERT_EQ(t.tokens[0].layers.size(), 3u);
  EXPECT_EQ(t.tokens[0].layers[0].experts, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(t.tokens[0].layers[1].experts, (std::vector<int32_t>{3, 2}));
  EXPECT_EQ(t.tokens[0].layers[2].experts, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(t.tokens[2].layers[2].layer, 2);
  // The same files in any order make the same trace.
  const Trace reversed = import_csv_gate_files({dir / "layer_2", dir / "layer_0", dir / "layer_1"}, {"m", 0, 0, 2});
  ASSERT_EQ(reversed.tokens.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    for (size_t l = 0; l < 3; ++l) EXPECT_EQ(reversed.tokens[i].layers[l].experts, t.tokens[i].layers[l].experts);
}

TEST(Importers, PerLayerCsvFilesByNameOrFlagAndTheRefusals) {
  const std::string header = "layer_id,token_id,expert_0,expert_1,expert_2\n";
  const auto a = temp_path("gates_layer3.csv"), b = temp_path("gates_layer0.csv");
  write_file(a, header + "0,0,0.1,0.2,0.7\n0,1,0.6,0.3,0.1\n");
  write_file(b, header + "0,0,0.9,0.1,0.0\n0,2,0.1,0.8,0.1\n");
  const Trace t = import_csv_gate_files({a, b}, {"m", 4, 0, 1});
  EXPECT_EQ(t.model.num_layers, 4);
  ASSERT_EQ(t.tokens.size(), 3u);  // tokens 0, 1, 2
  ASSERT_EQ(t.tokens[0].layers.size(), 2u);
  EXPECT_EQ(t.tokens[0].layers[0].layer, 0);
  EXPECT_EQ(t.tokens[0].layers[1].layer, 3);
  EXPECT_EQ(t.tokens[0].layers[1].experts, (std::vector<int32_t>{2}));
  // --layer for one file without a layer in its name.
  const auto plain = temp_path("gates.csv"), other = temp_path("more_gates.csv");
  write_file(plain, header + "0,0,0.1,0.2,0.7\n");
  write_file(other, header + "0,1,0.1,0.2,0.7\n");
  ImportOptions o{"m", 8, 0, 1};
  o.layer = 5;
  EXPECT_EQ(import_csv_gate_files({plain}, o).tokens[0].layers[0].layer, 5);
  EXPECT_THROW(import_csv_gate_files({plain, other}, o), Error);  // --layer names one file's layer
  // Rows that all claim layer 0, from several files or for a model of many layers: refused.
  for (const auto& [inputs, layers] : std::vector<std::pair<std::vector<std::filesystem::path>, int>>{
           {{plain, other}, 0}, {{plain}, 32}}) {
    try {
      import_csv_gate_files(inputs, {"m", layers, 0, 1});
      ADD_FAILURE() << inputs.size() << " files, " << layers << " layers: accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("claims layer 0"), std::string::npos) << e.what();
    }
  }
  // A file whose rows span several layers keeps its layer_id column, whatever its name.
  const auto many = temp_path("all_layer9.csv");
  write_file(many, header + "0,0,0.1,0.2,0.7\n1,0,0.6,0.3,0.1\n");
  const Trace m = import_csv_gate_files({many}, {"m", 0, 0, 1});
  EXPECT_EQ(m.model.num_layers, 2);
  // A one-file, one-layer import of a one-layer model is what it says.
  EXPECT_EQ(import_csv_gate_files({plain}, {"m", 0, 0, 1}).model.num_layers, 1);
}

TEST(TraceStats, KnownAnswers) {
  // Two layers of 4 experts; layer 0 always picks {0,1}, layer 1 picks 2 after 0 and 3 after 1.
  Trace t;
  t.model = {"m", 2, 4, 2};
  for (int i = 0; i < 10; ++i) t.tokens.push_back({0, i, {{0, {0, 1}, {}}, {1, {2, 3}, {}}}});
  const TraceStats s = compute_trace_stats(t);
  EXPECT_EQ(s.activations, 40);
  EXPECT_DOUBLE_EQ(s.layers[0].entropy_bits, 1.0);   // two experts, equally used
  EXPECT_DOUBLE_EQ(s.layers[0].normalized_entropy, 0.5);
  EXPECT_EQ(s.layers[0].coactivation[0 * 4 + 1], 10);
  EXPECT_DOUBLE_EQ(s.layers[0].transition_accuracy, 1.0);
  EXPECT_TRUE(std::isnan(s.layers[1].transition_accuracy));
  // The stream is 0,1,2,3 (as keys) repeated: each reuse sees the 3 others in between.
  EXPECT_EQ(s.cold_uses, 4);
  ASSERT_EQ(s.reuse_histogram.size(), 4u);
  EXPECT_EQ(s.reuse_histogram[3], 36);
  EXPECT_DOUBLE_EQ(s.lru_hit_rate(3), 0.0);         // one slot short: LRU never hits a loop
  EXPECT_DOUBLE_EQ(s.lru_hit_rate(4), 36.0 / 40.0);
  const std::string svg = render_trace_svg(s);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

}  // namespace
}  // namespace moe::placement
