#include "placement/trace/importers.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>

#include "placement/trace/trace_io.h"
#include "runtime/core/error.h"
#include "runtime/core/read_file.h"

namespace moe::placement {
namespace {

// Sorts each token's layers, fills the model's counts from what was seen (unless given),
// validates every token and counts the gaps.
Trace finish(Trace trace, const std::filesystem::path& path, const ImportOptions& options) {
  int max_layer = -1, max_expert = -1;
  size_t k_min = SIZE_MAX, k_max = 0;
  for (TokenRecord& t : trace.tokens) {
    std::sort(t.layers.begin(), t.layers.end(), [](const LayerRouting& a, const LayerRouting& b) { return a.layer < b.layer; });
    for (const LayerRouting& l : t.layers) {
      max_layer = std::max(max_layer, l.layer);
      for (int32_t e : l.experts) max_expert = std::max(max_expert, e);
      k_min = std::min(k_min, l.experts.size());
      k_max = std::max(k_max, l.experts.size());
    }
  }
  MOE_CHECK(!trace.tokens.empty(), ErrorCode::kCorrupt, "{} holds no routing decisions", path.string());
  trace.model.name = options.model_name.empty() ? path.stem().string() : options.model_name;
  trace.model.num_layers = options.num_layers > 0 ? options.num_layers : max_layer + 1;
  if (trace.model.num_experts == 0) trace.model.num_experts = options.num_experts > 0 ? options.num_experts : max_expert + 1;
  // Only empty choices ("experts": []) leave the count unknown: was "a trace needs the model's
  // layer and expert counts" from the writer.
  MOE_CHECK(trace.model.num_experts > 0, ErrorCode::kCorrupt,
            "{}: no routing decision names an expert, so the number of experts is unknown (give --experts)", path.string());
  trace.model.top_k = k_min == k_max ? int(k_max) : 0;
  trace.gaps = 0;
  for (size_t i = 0; i < trace.tokens.size(); ++i) {
    validate_token(trace.model, trace.tokens[i], fmt::format("{}: token {}", path.string(), i));
    trace.gaps += trace.model.num_layers - int64_t(trace.tokens[i].layers.size());
  }
  return trace;
}

int64_t json_int(const nlohmann::json& j, const char* key, const std::string& where) {
  MOE_CHECK(j.contains(key) && j[key].is_number_integer(), ErrorCode::kCorrupt, "{}: \"{}\" is missing or not an integer",
            where, key);
  return j[key].get<int64_t>();
}

std::vector<int32_t> expert_list(const nlohmann::json& j, const std::string& where) {
  MOE_CHECK(j.is_array(), ErrorCode::kCorrupt, "{}: expert ids are not an array", where);
  std::vector<int32_t> out;
  for (const auto& e : j) {
    MOE_CHECK(e.is_number_integer() && e.get<int64_t>() >= 0 && e.get<int64_t>() < (int64_t(1) << 30),
              ErrorCode::kCorrupt, "{}: an expert id is not a small non-negative integer", where);
    out.push_back(e.get<int32_t>());
  }
  return out;
}

}  // namespace

Trace import_jsonl(const std::filesystem::path& path, const ImportOptions& options, ImportReport* report) {
  std::ifstream in(path);
  MOE_CHECK(in.is_open(), ErrorCode::kNotFound, "cannot open {}", path.string());
  Trace trace;
  std::map<std::string, int64_t> sequences;            // dataset/problem -> sequence id
  std::map<std::pair<int64_t, int64_t>, size_t> open;  // (sequence, position) -> its latest token
  ImportReport r;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path.string(), number);
    const auto j = nlohmann::json::parse(line, nullptr, false);
    MOE_CHECK(!j.is_discarded() && j.is_object(), ErrorCode::kCorrupt, "{}: not a JSON object", where);
    ++r.records;
    const std::string dataset = j.contains("dataset") && j["dataset"].is_string() ? j["dataset"].get<std::string>() : "";
    const std::string name = fmt::format("{}/{}", dataset, json_int(j, "problem_id", where));
    const auto seq = sequences.emplace(name, int64_t(sequences.size())).first->second;
    MOE_CHECK(j.contains("token_idx") || j.contains("token_pos"), ErrorCode::kCorrupt,
              "{}: the position (\"token_idx\" or \"token_pos\") is missing", where);
    const int64_t position = json_int(j, j.contains("token_idx") ? "token_idx" : "token_pos", where);
    MOE_CHECK(position >= 0, ErrorCode::kCorrupt, "{}: the position {} is negative", where, position);
    const int64_t layer = json_int(j, "layer", where);
    MOE_CHECK(layer >= 0 && layer < 4096, ErrorCode::kCorrupt, "{}: layer {} is out of range", where, layer);
    MOE_CHECK(j.contains("experts"), ErrorCode::kCorrupt, "{}: \"experts\" is missing", where);
    LayerRouting choice{int32_t(layer), expert_list(j["experts"], where), {}};
    if (j.contains("gating_probs")) {
      const auto& w = j["gating_probs"];
      MOE_CHECK(w.is_array() && w.size() == choice.experts.size(), ErrorCode::kCorrupt,
                "{}: \"gating_probs\" is not one number per expert", where);
      for (const auto& v : w) {
        // A probability: 1e39 would be inf as a float, and a negative gate no router gives.
        MOE_CHECK(v.is_number() && std::isfinite(v.get<float>()) && v.get<float>() >= 0, ErrorCode::kCorrupt,
                  "{}: a gating probability is not a finite non-negative number", where);
        choice.weights.push_back(v.get<float>());
      }
    }
    auto it = open.find({seq, position});
    const bool fresh = it == open.end() ||
                       std::any_of(trace.tokens[it->second].layers.begin(), trace.tokens[it->second].layers.end(),
                                   [&](const LayerRouting& l) { return l.layer == choice.layer; });
    if (fresh) {
      if (it != open.end()) ++r.restarted_positions;
      trace.tokens.push_back(TokenRecord{seq, position, {}});
      open[{seq, position}] = trace.tokens.size() - 1;
      it = open.find({seq, position});
    }
    trace.tokens[it->second].layers.push_back(std::move(choice));
  }
  MOE_CHECK(!in.bad(), ErrorCode::kIo, "cannot read {}", path.string());
  if (report) *report = r;
  return finish(std::move(trace), path, options);
}

namespace {

// [tokens][layers][top_k] integers, row-major, from .npy.
struct Array3 {
  std::vector<int64_t> values;
  int64_t tokens = 0, layers = 0, k = 0;
};

Array3 read_npy(const std::filesystem::path& path) {
  const std::string bytes = read_file(path, "trace");
  const std::string name = path.string();
  MOE_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, ErrorCode::kCorrupt,
            "{} is not a .npy file", name);
  const int major = uint8_t(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = uint8_t(bytes[8]) | (size_t(uint8_t(bytes[9])) << 8);
    offset = 10;
  } else {
    MOE_CHECK(bytes.size() >= 12, ErrorCode::kCorrupt, "{}: truncated .npy header", name);
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    offset = 12;
  }
  MOE_CHECK(offset + header_len <= bytes.size(), ErrorCode::kCorrupt, "{}: truncated .npy header", name);
  const std::string header = bytes.substr(offset, header_len);
  const auto field = [&](const std::string& key) {
    const auto at = header.find("'" + key + "'");
    MOE_CHECK(at != std::string::npos, ErrorCode::kCorrupt, "{}: .npy header lacks '{}'", name, key);
    return header.substr(header.find(':', at) + 1);
  };
  const std::string descr = field("descr");
  const auto q1 = descr.find('\''), q2 = descr.find('\'', q1 + 1);
  MOE_CHECK(q1 != std::string::npos && q2 != std::string::npos, ErrorCode::kCorrupt, "{}: malformed dtype", name);
  const std::string dtype = descr.substr(q1 + 1, q2 - q1 - 1);
  MOE_CHECK(field("fortran_order").find("False") < field("fortran_order").find(','), ErrorCode::kUnsupported,
            "{}: Fortran-ordered arrays are not read", name);
  const std::string shape_text = field("shape");
  const auto open = shape_text.find('('), close = shape_text.find(')');
  MOE_CHECK(open != std::string::npos && close != std::string::npos, ErrorCode::kCorrupt, "{}: malformed shape", name);
  std::vector<int64_t> shape;
  std::stringstream dims(shape_text.substr(open + 1, close - open - 1));
  for (std::string d; std::getline(dims, d, ',');) {
    const auto first = d.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    const std::string dim = d.substr(first, d.find_last_not_of(' ') - first + 1);
    int64_t v = 0;
    const auto [at, ec] = std::from_chars(dim.data(), dim.data() + dim.size(), v);
    MOE_CHECK(ec == std::errc() && at == dim.data() + dim.size(), ErrorCode::kCorrupt,
              "{}: the .npy shape has '{}', not a whole number of at most 19 digits", name, dim);
    shape.push_back(v);
  }
  MOE_CHECK(shape.size() == 3 && shape[0] > 0 && shape[1] > 0 && shape[2] > 0 && shape[0] < (int64_t(1) << 32) &&
                shape[1] < 4096 && shape[2] < 4096,
            ErrorCode::kCorrupt, "{}: routed experts must be a [tokens, layers, top_k] array", name);
  size_t width = 0;
  bool is_signed = true;
  if (dtype == "<i8") width = 8;
  else if (dtype == "<i4") width = 4;
  else if (dtype == "<i2") width = 2;
  else if (dtype == "|i1") width = 1;
  else if (dtype == "|u1") width = 1, is_signed = false;
  else if (dtype == "<u2") width = 2, is_signed = false;
  else if (dtype == "<u4") width = 4, is_signed = false;
  else fail(ErrorCode::kUnsupported, "{}: dtype {} is not an integer type this reader knows", name, dtype);
  Array3 a{{}, shape[0], shape[1], shape[2]};
  const size_t count = size_t(shape[0] * shape[1] * shape[2]);
  const size_t data = offset + header_len;
  MOE_CHECK(bytes.size() - data >= count * width, ErrorCode::kCorrupt, "{}: holds {} bytes of data, the shape needs {}",
            name, bytes.size() - data, count * width);
  a.values.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const char* p = bytes.data() + data + i * width;
    int64_t v = 0;
    if (width == 8) std::memcpy(&v, p, 8);
    else if (width == 4) { int32_t x; uint32_t u; std::memcpy(&x, p, 4); std::memcpy(&u, p, 4); v = is_signed ? x : int64_t(u); }
    else if (width == 2) { int16_t x; uint16_t u; std::memcpy(&x, p, 2); std::memcpy(&u, p, 2); v = is_signed ? x : int64_t(u); }
    else v = is_signed ? int64_t(int8_t(*p)) : int64_t(uint8_t(*p));
    a.values[i] = v;
  }
  return a;
}

Array3 read_json_array(const std::filesystem::path& path) {
  auto j = nlohmann::json::parse(read_file(path, "trace"), nullptr, false);
  MOE_CHECK(!j.is_discarded(), ErrorCode::kCorrupt, "{} is not valid JSON", path.string());
  if (j.is_object() && j.contains("routed_experts")) j = j["routed_experts"];
  MOE_CHECK(j.is_array() && !j.empty() && j[0].is_array() && !j[0].empty() && j[0][0].is_array(), ErrorCode::kCorrupt,
            "{}: routed experts must be a [tokens, layers, top_k] array", path.string());
  Array3 a{{}, int64_t(j.size()), int64_t(j[0].size()), int64_t(j[0][0].size())};
  for (const auto& t : j) {
    MOE_CHECK(t.is_array() && int64_t(t.size()) == a.layers, ErrorCode::kCorrupt, "{}: ragged [tokens, layers] array",
              path.string());
    for (const auto& l : t) {
      MOE_CHECK(l.is_array() && int64_t(l.size()) == a.k, ErrorCode::kCorrupt, "{}: ragged top_k dimension", path.string());
      for (const auto& e : l) {
        MOE_CHECK(e.is_number_integer(), ErrorCode::kCorrupt, "{}: an expert id is not an integer", path.string());
        a.values.push_back(e.get<int64_t>());
      }
    }
  }
  return a;
}

}  // namespace

Trace import_vllm(const std::filesystem::path& path, const ImportOptions& options, ImportReport* report) {
  const Array3 a = path.extension() == ".npy" ? read_npy(path) : read_json_array(path);
  Trace trace;
  trace.tokens.reserve(size_t(a.tokens));
  for (int64_t t = 0; t < a.tokens; ++t) {
    TokenRecord token{0, t, {}};
    for (int64_t l = 0; l < a.layers; ++l) {
      LayerRouting choice{int32_t(l), {}, {}};
      for (int64_t k = 0; k < a.k; ++k) {
        const int64_t e = a.values[size_t((t * a.layers + l) * a.k + k)];
        MOE_CHECK(e >= 0 && e < (int64_t(1) << 30), ErrorCode::kCorrupt, "{}: expert id {} at token {} layer {}",
                  path.string(), e, t, l);
        choice.experts.push_back(int32_t(e));
      }
      token.layers.push_back(std::move(choice));
    }
    trace.tokens.push_back(std::move(token));
  }
  if (report) *report = ImportReport{a.tokens * a.layers, 0};
  return finish(std::move(trace), path, options);
}

namespace {

// One CSV gate file's rows, before they are merged: (token_id, choice) in file order.
struct CsvRows {
  int experts = 0;
  std::vector<std::pair<int64_t, LayerRouting>> rows;
};

CsvRows read_csv_gates(const std::filesystem::path& path, const ImportOptions& options) {
  std::ifstream in(path);
  MOE_CHECK(in.is_open(), ErrorCode::kNotFound, "cannot open {}", path.string());
  const auto split = [](const std::string& line) {
    std::vector<std::string> cells;
    std::stringstream s(line);
    for (std::string c; std::getline(s, c, ',');) {
      while (!c.empty() && (c.back() == '\r' || c.back() == ' ')) c.pop_back();
      cells.push_back(c.substr(std::min(c.find_first_not_of(' '), c.size())));
    }
    return cells;
  };
  std::string line;
  MOE_CHECK(std::getline(in, line), ErrorCode::kCorrupt, "{} is empty", path.string());
  const auto header = split(line);
  MOE_CHECK(header.size() >= 3 && header[0] == "layer_id" && header[1] == "token_id" && header[2] == "expert_0",
            ErrorCode::kCorrupt, "{}: the header must be layer_id,token_id,expert_0,...", path.string());
  CsvRows out;
  const int experts = out.experts = int(header.size() - 2);
  MOE_CHECK(options.top_k >= 0 && options.top_k <= experts, ErrorCode::kInvalidArgument,
            "top-k {} is impossible with {} experts", options.top_k, experts);
  for (int64_t number = 2; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path.string(), number);
    const auto cells = split(line);
    MOE_CHECK(cells.size() == header.size(), ErrorCode::kCorrupt, "{}: {} cells, the header has {}", where, cells.size(),
              header.size());
    int64_t layer = 0, token = 0;
    std::vector<float> gates(static_cast<size_t>(experts));
    try {
      size_t used = 0;
      layer = std::stoll(cells[0], &used);
      MOE_CHECK(used == cells[0].size(), ErrorCode::kCorrupt, "{}: layer_id is not an integer", where);
      token = std::stoll(cells[1], &used);
      MOE_CHECK(used == cells[1].size(), ErrorCode::kCorrupt, "{}: token_id is not an integer", where);
      for (int e = 0; e < experts; ++e) {
        gates[size_t(e)] = std::stof(cells[size_t(e) + 2], &used);
        MOE_CHECK(used == cells[size_t(e) + 2].size() && std::isfinite(gates[size_t(e)]) && gates[size_t(e)] >= 0,
                  ErrorCode::kCorrupt, "{}: expert_{} is not a finite non-negative gate", where, e);
      }
    } catch (const std::logic_error&) {  // stoll/stof: not a number, or out of range
      fail(ErrorCode::kCorrupt, "{}: a cell is not a number", where);
    }
    MOE_CHECK(layer >= 0 && layer < 4096 && token >= 0, ErrorCode::kCorrupt, "{}: layer or token id out of range", where);
    std::vector<int32_t> order(static_cast<size_t>(experts));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return gates[size_t(a)] > gates[size_t(b)]; });
    LayerRouting choice{int32_t(layer), {}, {}};
    for (int32_t e : order) {
      if (options.top_k > 0 ? int(choice.experts.size()) == options.top_k : gates[size_t(e)] == 0.0f) break;
      choice.experts.push_back(e);
      choice.weights.push_back(gates[size_t(e)]);
    }
    MOE_CHECK(!choice.experts.empty(), ErrorCode::kCorrupt, "{}: every gate is zero", where);
    out.rows.emplace_back(token, std::move(choice));
  }
  MOE_CHECK(!in.bad(), ErrorCode::kIo, "cannot read {}", path.string());
  return out;
}

// The files to read: each input, or a folder's *.csv in name order.
std::vector<std::filesystem::path> csv_files(const std::vector<std::filesystem::path>& inputs) {
  std::vector<std::filesystem::path> files;
  for (const auto& input : inputs) {
    if (!std::filesystem::is_directory(input)) {
      files.push_back(input);
      continue;
    }
    std::vector<std::filesystem::path> found;
    for (const auto& entry : std::filesystem::directory_iterator(input))
      if (entry.is_regular_file() && entry.path().extension() == ".csv") found.push_back(entry.path());
    MOE_CHECK(!found.empty(), ErrorCode::kInvalidArgument, "{} is a folder without .csv gate files", input.string());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

std::optional<int> last_layer_number(const std::string& name) {
  static const std::regex pattern("layer[_\\- ]?([0-9]{1,4})", std::regex::icase);
  std::optional<int> found;
  for (auto it = std::sregex_iterator(name.begin(), name.end(), pattern); it != std::sregex_iterator(); ++it)
    found = std::stoi((*it)[1].str());
  return found;
}

}  // namespace

std::optional<int> layer_from_path(const std::filesystem::path& path) {
  if (auto layer = last_layer_number(path.stem().string())) return layer;
  return last_layer_number(path.parent_path().filename().string());
}

Trace import_csv_gate_files(const std::vector<std::filesystem::path>& inputs, const ImportOptions& options,
                            ImportReport* report) {
  MOE_CHECK(!inputs.empty(), ErrorCode::kInvalidArgument, "no CSV gate file to import");
  const std::vector<std::filesystem::path> files = csv_files(inputs);
  MOE_CHECK(options.layer < 0 || files.size() == 1, ErrorCode::kInvalidArgument,
            "--layer names the layer of one file, and {} were given; name each file's layer in its name (layer_3/, "
            "...layer3.csv)", files.size());
  // Each file's rows and the layer its name (or the flag) gives them.
  std::vector<std::pair<CsvRows, std::optional<int>>> read;
  std::set<int32_t> claimed;  // layers the rows claim, where no name or flag said
  bool named = false;         // some file's layer came from its name or the flag
  for (const auto& file : files) {
    CsvRows csv = read_csv_gates(file, options);
    std::set<int32_t> layers;
    for (const auto& [token, choice] : csv.rows) layers.insert(choice.layer);
    // A name's layer applies only to a per-layer file (its rows all claim one layer).
    std::optional<int> layer = options.layer >= 0 ? std::optional<int>(options.layer) : std::nullopt;
    if (!layer && layers.size() == 1) layer = layer_from_path(file);
    if (layer) named = true;
    else claimed.insert(layers.begin(), layers.end());
    read.emplace_back(std::move(csv), layer);
  }
  // Per-layer files whose layer nothing names would all land in one layer: refuse, do not guess.
  MOE_CHECK(named || claimed.size() != 1 || (files.size() == 1 && options.num_layers <= 1), ErrorCode::kInvalidArgument,
            "every row of {} claims layer {}{}: per-layer files must name their layer (layer_3/..., ...layer3.csv) or "
            "be imported one at a time with --layer N",
            files.size() == 1 ? files[0].string() : fmt::format("the {} files", files.size()), *claimed.begin(),
            files.size() == 1 ? fmt::format(" while the model has {} layers", options.num_layers) : "");
  Trace trace;
  std::map<int64_t, size_t> token_index;  // token_id -> its record
  ImportReport r;
  for (size_t f = 0; f < files.size(); ++f) {
    auto& [csv, layer] = read[f];
    MOE_CHECK(trace.model.num_experts == 0 || trace.model.num_experts == csv.experts, ErrorCode::kInvalidArgument,
              "{} has {} experts, the files before it {}", files[f].string(), csv.experts, trace.model.num_experts);
    trace.model.num_experts = csv.experts;
    for (auto& [token, choice] : csv.rows) {
      if (layer) choice.layer = *layer;
      auto [it, inserted] = token_index.emplace(token, trace.tokens.size());
      if (inserted) trace.tokens.push_back(TokenRecord{0, token, {}});
      for (const auto& l : trace.tokens[it->second].layers)
        MOE_CHECK(l.layer != choice.layer, ErrorCode::kCorrupt, "{}: layer {} of token {} appears twice", files[f].string(),
                  choice.layer, token);
      trace.tokens[it->second].layers.push_back(std::move(choice));
      ++r.records;
    }
  }
  std::sort(trace.tokens.begin(), trace.tokens.end(),
            [](const TokenRecord& a, const TokenRecord& b) { return a.position < b.position; });
  if (report) *report = r;
  return finish(std::move(trace), files.size() == 1 ? files[0] : inputs[0], options);
}

Trace import_csv_gates(const std::filesystem::path& path, const ImportOptions& options, ImportReport* report) {
  return import_csv_gate_files({path}, options, report);
}

Trace import_trace(const std::filesystem::path& path, const std::string& format, const ImportOptions& options,
                   ImportReport* report) {
  std::string f = format;
  if (f == "auto") {
    const std::string ext = path.extension().string();
    f = std::filesystem::is_directory(path) ? "csv" : ext == ".jsonl" ? "jsonl" : ext == ".npy" || ext == ".json" ? "vllm" : ext == ".csv" ? "csv" : "";
    MOE_CHECK(!f.empty(), ErrorCode::kInvalidArgument,
              "cannot tell the format of {} from its extension; name it (jsonl, vllm or csv)", path.string());
  }
  if (f == "jsonl") return import_jsonl(path, options, report);
  if (f == "vllm") return import_vllm(path, options, report);
  if (f == "csv") return import_csv_gates(path, options, report);
  fail(ErrorCode::kInvalidArgument, "unknown trace format '{}' (jsonl, vllm or csv)", format);
}

Trace load_any_trace(const std::filesystem::path& path) {
  if (is_trace_file(path)) return read_trace(path);
  return import_trace(path, "auto", {});
}

}  // namespace moe::placement
