#include "runtime/loading/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include "runtime/core/error.h"

namespace moe::loading {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // as the safetensors project

struct DTypeInfo {
  const char* name;
  StDType st;
  int bits;
};
constexpr DTypeInfo kDTypes[] = {
    {"BOOL", StDType::kBool, 8}, {"U8", StDType::kU8, 8},     {"I8", StDType::kI8, 8},
    {"I16", StDType::kI16, 16},  {"U16", StDType::kU16, 16},  {"F16", StDType::kF16, 16},
    {"BF16", StDType::kBF16, 16}, {"I32", StDType::kI32, 32}, {"U32", StDType::kU32, 32},
    {"F32", StDType::kF32, 32},  {"F64", StDType::kF64, 64},  {"I64", StDType::kI64, 64},
    {"U64", StDType::kU64, 64},  {"F8_E4M3", StDType::kF8E4M3, 8}, {"F8_E5M2", StDType::kF8E5M2, 8},
};

const DTypeInfo* dtype_info(std::string_view name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DTypeInfo& dtype_info(StDType st) {
  for (const auto& d : kDTypes)
    if (d.st == st) return d;
  return kDTypes[0];
}

bool engine_dtype(StDType st, DType* out) {
  switch (st) {
    case StDType::kF32: *out = DType::kF32; return true;
    case StDType::kF16: *out = DType::kF16; return true;
    case StDType::kBF16: *out = DType::kBF16; return true;
    case StDType::kI8: *out = DType::kI8; return true;
    case StDType::kU8: *out = DType::kU8; return true;
    case StDType::kI32: *out = DType::kI32; return true;
    case StDType::kF8E4M3: *out = DType::kF8E4M3; return true;  // float8_e4m3fn, dequantised by its block scales
    default: return false;
  }
}

// nlohmann keeps the last of duplicate keys silently; the format forbids them.
json parse_rejecting_duplicates(std::string_view text, std::string_view file) {
  std::vector<std::set<std::string>> keys_per_level;
  std::string duplicate;
  const json::parser_callback_t callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys_per_level.resize(size_t(depth) + 1);
      keys_per_level[size_t(depth)].clear();
    } else if (event == json::parse_event_t::key && depth >= 1) {
      auto& keys = keys_per_level[size_t(depth) - 1];
      if (!keys.insert(parsed.get<std::string>()).second && duplicate.empty()) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    fail(ErrorCode::kCorrupt, "{}: the header is not valid JSON ({})", file, e.what());
  }
  MOE_CHECK(duplicate.empty(), ErrorCode::kCorrupt, "{}: the header names '{}' twice", file, duplicate);
  return doc;
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }

}  // namespace

SafetensorsHeader parse_safetensors_header(std::span<const std::byte> bytes, uint64_t file_size, std::string_view file) {
  MOE_CHECK(file_size >= 8 && bytes.size() >= 8, ErrorCode::kCorrupt, "{}: too short for a safetensors header", file);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<uint64_t>(bytes[size_t(i)]);  // little-endian
  MOE_CHECK(n <= kMaxHeaderBytes, ErrorCode::kCorrupt, "{}: header length {} exceeds 100 MB", file, n);
  MOE_CHECK(8 + n <= file_size && 8 + n <= bytes.size(), ErrorCode::kCorrupt,
            "{}: header length {} runs past the end of the file", file, n);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, size_t(n));
  MOE_CHECK(!text.empty() && text.front() == '{', ErrorCode::kCorrupt, "{}: the header does not start with '{{'", file);
  const json doc = parse_rejecting_duplicates(text, file);
  MOE_CHECK(doc.is_object(), ErrorCode::kCorrupt, "{}: the header is not a JSON object", file);

  SafetensorsHeader header;
  header.data_offset = 8 + n;
  for (const auto& [name, entry] : doc.items()) {
    if (name == "__metadata__") {
      MOE_CHECK(entry.is_object(), ErrorCode::kCorrupt, "{}: __metadata__ must be an object", file);
      for (const auto& [key, value] : entry.items()) {
        MOE_CHECK(value.is_string(), ErrorCode::kCorrupt, "{}: metadata '{}' must be a string", file, key);
        header.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    MOE_CHECK(entry.is_object() && entry.contains("dtype") && entry.contains("shape") && entry.contains("data_offsets"),
              ErrorCode::kCorrupt, "{}: tensor '{}' needs dtype, shape and data_offsets", file, name);
    const json& dtype = entry.at("dtype");
    const DTypeInfo* info = dtype.is_string() ? dtype_info(dtype.get<std::string>()) : nullptr;
    MOE_CHECK(info != nullptr, ErrorCode::kCorrupt, "{}: tensor '{}' has an unknown dtype", file, name);
    const json& shape = entry.at("shape");
    const json& offsets = entry.at("data_offsets");
    MOE_CHECK(shape.is_array(), ErrorCode::kCorrupt, "{}: tensor '{}' shape must be a list", file, name);
    MOE_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned(),
              ErrorCode::kCorrupt, "{}: tensor '{}' data_offsets must be two non-negative integers", file, name);
    TensorInfo t;
    t.name = name;
    t.st_dtype = info->st;
    uint64_t numel = 1;
    for (const json& d : shape) {
      MOE_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(INT64_MAX), ErrorCode::kCorrupt,
                "{}: tensor '{}' has a negative or non-integer dimension", file, name);
      MOE_CHECK(checked_mul(numel, d.get<uint64_t>(), &numel), ErrorCode::kCorrupt,
                "{}: tensor '{}' shape overflows", file, name);
      t.shape.push_back(int64_t(d.get<uint64_t>()));
    }
    uint64_t bits = 0;
    MOE_CHECK(checked_mul(numel, uint64_t(info->bits), &bits), ErrorCode::kCorrupt, "{}: tensor '{}' size overflows", file, name);
    t.begin = offsets[0].get<uint64_t>();
    t.end = offsets[1].get<uint64_t>();
    MOE_CHECK(t.begin <= t.end, ErrorCode::kCorrupt, "{}: tensor '{}' ends before it begins", file, name);
    MOE_CHECK(t.end - t.begin == bits / 8, ErrorCode::kCorrupt,
              "{}: tensor '{}' holds {} bytes, its dtype and shape need {}", file, name, t.end - t.begin, bits / 8);
    header.tensors.push_back(std::move(t));
  }
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  for (const TensorInfo& t : header.tensors) {
    MOE_CHECK(t.begin == expected, ErrorCode::kCorrupt, "{}: tensor '{}' starts at byte {}, expected {} (offsets must be contiguous)",
              file, t.name, t.begin, expected);
    expected = t.end;
  }
  MOE_CHECK(header.data_offset + expected == file_size, ErrorCode::kCorrupt,
            "{}: the tensors cover {} bytes but the data section has {}", file, expected, file_size - header.data_offset);
  return header;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  const auto bytes = f.file_->bytes();
  f.header_ = parse_safetensors_header(bytes, bytes.size(), path.string());
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) f.index_.emplace(f.header_.tensors[i].name, i);
  return f;
}

const std::filesystem::path& SafetensorsFile::path() const { return file_->path(); }

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

std::span<const std::byte> SafetensorsFile::bytes(const TensorInfo& info) const {
  return file_->bytes().subspan(size_t(header_.data_offset + info.begin), size_t(info.nbytes()));
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
  const TensorInfo* info = find(name);
  MOE_CHECK(info != nullptr, ErrorCode::kNotFound, "{} has no tensor '{}'", path().string(), name);
  DType dtype;
  MOE_CHECK(engine_dtype(info->st_dtype, &dtype), ErrorCode::kUnsupported, "{}: tensor '{}' has dtype {}, which the engine does not compute with",
            path().string(), name, dtype_info(info->st_dtype).name);
  const auto data = bytes(*info);
  const Tensor mapped = Tensor::view(data.data(), dtype, info->shape, file_);
  // Files whose header is not padded leave tensors at odd offsets; reading them in place would
  // be a misaligned access, so such a tensor is copied once into aligned memory.
  const size_t alignment = std::max<size_t>(1, size_t(dtype_bits(dtype)) / 8);
  if (reinterpret_cast<uintptr_t>(data.data()) % alignment != 0) return mapped.clone();
  return mapped;
}

namespace {

// A shard name from the index must be a plain file name inside the folder.
std::filesystem::path shard_path(const std::filesystem::path& dir, const std::string& name) {
  const std::filesystem::path p(name);
  MOE_CHECK(!name.empty() && p.is_relative() && p.filename() == p && name != "." && name != ".." &&
                name.find('/') == std::string::npos && name.find('\\') == std::string::npos,
            ErrorCode::kCorrupt, "{}: shard name '{}' must be a file inside the folder", dir.string(), name);
  const std::filesystem::path full = dir / p;
  std::error_code ec;
  const auto canonical_dir = std::filesystem::weakly_canonical(dir, ec);
  const auto canonical_file = std::filesystem::weakly_canonical(full, ec);
  MOE_CHECK(!ec && canonical_file.parent_path() == canonical_dir, ErrorCode::kCorrupt,
            "{}: shard '{}' leads outside the folder", dir.string(), name);
  return full;
}

}  // namespace

Checkpoint Checkpoint::open(const std::filesystem::path& dir) {
  Checkpoint c;
  c.dir_ = dir;
  const auto index_path = dir / "model.safetensors.index.json";
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  if (std::filesystem::exists(index_path)) {
    std::ifstream in(index_path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const json doc = parse_rejecting_duplicates(text, index_path.string());
    MOE_CHECK(doc.is_object() && doc.contains("weight_map") && doc.at("weight_map").is_object(), ErrorCode::kCorrupt,
              "{}: needs a weight_map object", index_path.string());
    for (const auto& [name, shard] : doc.at("weight_map").items()) {
      MOE_CHECK(shard.is_string(), ErrorCode::kCorrupt, "{}: the shard of '{}' must be a file name", index_path.string(), name);
      weight_map[name] = shard.get<std::string>();
      if (std::find(shard_names.begin(), shard_names.end(), shard.get<std::string>()) == shard_names.end())
        shard_names.push_back(shard.get<std::string>());
    }
  } else {
    MOE_CHECK(std::filesystem::exists(dir / "model.safetensors"), ErrorCode::kNotFound,
              "{} has neither model.safetensors nor model.safetensors.index.json", dir.string());
    shard_names.push_back("model.safetensors");
  }
  std::sort(shard_names.begin(), shard_names.end());
  for (const std::string& name : shard_names) {
    const auto path = shard_path(dir, name);
    MOE_CHECK(std::filesystem::exists(path), ErrorCode::kNotFound, "{}: shard '{}' is missing", dir.string(), name);
    c.files_.push_back(SafetensorsFile::open(path));
    const size_t index = c.files_.size() - 1;
    for (const TensorInfo& t : c.files_.back().header().tensors) {
      MOE_CHECK(c.owner_.emplace(t.name, index).second, ErrorCode::kCorrupt, "{}: tensor '{}' appears in two shards",
                dir.string(), t.name);
    }
  }
  for (const auto& [name, shard] : weight_map) {
    const auto it = c.owner_.find(name);
    MOE_CHECK(it != c.owner_.end() && c.files_[it->second].path().filename() == shard, ErrorCode::kCorrupt,
              "{}: the index puts '{}' in {}, which does not hold it", dir.string(), name, shard);
  }
  return c;
}

bool Checkpoint::has(std::string_view name) const { return owner_.find(name) != owner_.end(); }

Tensor Checkpoint::tensor(std::string_view name) const {
  const auto it = owner_.find(name);
  MOE_CHECK(it != owner_.end(), ErrorCode::kNotFound, "{} has no tensor '{}'", dir_.string(), name);
  return files_[it->second].tensor(name);
}

const TensorInfo& Checkpoint::info(std::string_view name) const {
  const auto it = owner_.find(name);
  MOE_CHECK(it != owner_.end(), ErrorCode::kNotFound, "{} has no tensor '{}'", dir_.string(), name);
  return *files_[it->second].find(name);
}

TensorLocation Checkpoint::location(std::string_view name) const {
  const auto it = owner_.find(name);
  MOE_CHECK(it != owner_.end(), ErrorCode::kNotFound, "{} has no tensor '{}'", dir_.string(), name);
  const SafetensorsFile& f = files_[it->second];
  const TensorInfo& t = *f.find(name);
  return {f.path(), f.header().data_offset + t.begin, t.nbytes()};
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, index] : owner_) out.push_back(name);
  return out;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& f : files_)
    for (const auto& t : f.header().tensors) total += t.nbytes();
  return total;
}

}  // namespace moe::loading
