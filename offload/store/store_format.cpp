#include "offload/store/store_format.h"

#include <xxhash.h>

#include <fmt/format.h>

#include <charconv>
#include <cstring>
#include <fstream>

#include "runtime/core/error.h"

namespace moe::offload {
namespace {

void put64(std::string& s, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) s[at + size_t(i)] = char((v >> (8 * i)) & 0xFF);
}

uint64_t get64(std::span<const std::byte> b, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | std::to_integer<uint64_t>(b[at + size_t(i)]);
  return v;
}

bool inside(uint64_t offset, uint64_t bytes, uint64_t file_size) { return offset <= file_size && bytes <= file_size - offset; }

}  // namespace

uint64_t align_up(uint64_t value, uint64_t alignment) { return (value + alignment - 1) / alignment * alignment; }

std::string fp8_store_format_name(int block_rows, int block_cols) { return fmt::format("fp8:{}x{}", block_rows, block_cols); }

bool parse_fp8_store_format(std::string_view name, int* block_rows, int* block_cols) {
  constexpr std::string_view kPrefix = "fp8:";
  if (name.substr(0, kPrefix.size()) != kPrefix) return false;
  const std::string_view blocks = name.substr(kPrefix.size());
  const size_t x = blocks.find('x');
  if (x == std::string_view::npos) return false;
  int r = 0, c = 0;
  const auto [end_r, ec_r] = std::from_chars(blocks.data(), blocks.data() + x, r);
  const auto [end_c, ec_c] = std::from_chars(blocks.data() + x + 1, blocks.data() + blocks.size(), c);
  if (ec_r != std::errc() || ec_c != std::errc() || end_r != blocks.data() + x || end_c != blocks.data() + blocks.size() ||
      r <= 0 || c <= 0)
    return false;
  *block_rows = r;
  *block_cols = c;
  return true;
}

bool parse_store_format(std::string_view name, QuantFormat* out) {
  int block_rows = 0, block_cols = 0;
  if (parse_fp8_store_format(name, &block_rows, &block_cols)) {
    *out = QuantFormat{DType::kF8E4M3, 0};
    return true;
  }
  const size_t colon = name.find(":g");
  DType dtype;
  if (!parse_dtype(name.substr(0, colon), &dtype)) return false;
  const bool quantised = dtype == DType::kI8 || dtype == DType::kI4;
  if (quantised != (colon != std::string_view::npos)) return false;
  int group = 0;
  if (quantised) {
    const std::string_view g = name.substr(colon + 2);
    const auto [end, ec] = std::from_chars(g.data(), g.data() + g.size(), group);
    if (ec != std::errc() || end != g.data() + g.size() || group <= 0) return false;
  }
  *out = QuantFormat{dtype, group};
  return true;
}

std::string encode_header(const StoreHeader& h) {
  std::string s(kHeaderBytes, '\0');
  std::memcpy(s.data(), kStoreMagic, 8);
  put64(s, 8, h.version);
  put64(s, 16, h.manifest_offset);
  put64(s, 24, h.manifest_bytes);
  put64(s, 32, h.manifest_xxh64);
  return s;
}

StoreHeader decode_header(std::span<const std::byte> b, uint64_t file_size, std::string_view source) {
  MOE_CHECK(b.size() >= kHeaderBytes && file_size >= kHeaderBytes, ErrorCode::kCorrupt, "{} is too short to be an expert store",
            source);
  MOE_CHECK(std::memcmp(b.data(), kStoreMagic, 8) == 0, ErrorCode::kCorrupt, "{} is not an expert store (bad magic)", source);
  StoreHeader h;
  h.version = static_cast<uint32_t>(get64(b, 8));
  h.manifest_offset = get64(b, 16);
  h.manifest_bytes = get64(b, 24);
  h.manifest_xxh64 = get64(b, 32);
  MOE_CHECK(h.version >= kStoreVersionGatedOnly && h.version <= kStoreVersion, ErrorCode::kUnsupported,
            "{} has store version {}; this engine reads versions {} to {}", source, h.version, kStoreVersionGatedOnly,
            kStoreVersion);
  MOE_CHECK(h.manifest_bytes <= kManifestLimit && inside(h.manifest_offset, h.manifest_bytes, file_size) &&
                h.manifest_offset >= kHeaderBytes,
            ErrorCode::kCorrupt, "{}: the manifest lies outside the file (truncated store?)", source);
  return h;
}

store::StoreManifest decode_manifest(std::span<const std::byte> file, const StoreHeader& h, std::string_view source) {
  const auto bytes = file.subspan(size_t(h.manifest_offset), size_t(h.manifest_bytes));
  MOE_CHECK(XXH64(bytes.data(), bytes.size(), 0) == h.manifest_xxh64, ErrorCode::kCorrupt, "{}: the manifest checksum does not match",
            source);
  store::StoreManifest m;
  MOE_CHECK(m.ParseFromArray(bytes.data(), int(bytes.size())), ErrorCode::kCorrupt, "{}: the manifest does not parse", source);
  const uint64_t end = h.manifest_offset;  // every piece lies before the manifest
  for (const auto& f : m.files())
    MOE_CHECK(inside(f.offset(), f.nbytes(), end), ErrorCode::kCorrupt, "{}: file '{}' lies outside the store", source, f.name());
  for (const auto& t : m.resident())
    MOE_CHECK(inside(t.offset(), t.nbytes(), end), ErrorCode::kCorrupt, "{}: tensor '{}' lies outside the store", source, t.name());
  for (const auto& e : m.experts()) {
    MOE_CHECK(e.offset() % kBlobAlignment == 0 && inside(e.offset(), align_up(e.nbytes(), kBlobAlignment), end),
              ErrorCode::kCorrupt, "{}: expert ({}, {}) {} is misplaced", source, e.layer(), e.expert(), e.format());
    const bool gelu_form = h.version >= 2 && e.matrices_size() == 2;  // up with its bias, and down
    MOE_CHECK(e.matrices_size() == 3 || gelu_form, ErrorCode::kCorrupt, "{}: expert ({}, {}) {} needs {} matrices", source,
              e.layer(), e.expert(), e.format(), h.version >= 2 ? "two or three" : "three");
    for (const auto& p : e.matrices())
      MOE_CHECK(inside(p.data_offset(), p.data_bytes(), e.nbytes()) && inside(p.scales_offset(), p.scales_bytes(), e.nbytes()) &&
                    inside(p.bias_offset(), p.bias_bytes(), e.nbytes()) &&
                    (p.bias_bytes() == 0 || (h.version >= 2 && p.bias_bytes() == uint64_t(p.rows()) * sizeof(float))),
                ErrorCode::kCorrupt, "{}: matrix '{}' (or its bias) lies outside its blob", source, p.name());
  }
  return m;
}

bool looks_like_store(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  return in.read(magic, 8) && std::memcmp(magic, kStoreMagic, 8) == 0;
}

}  // namespace moe::offload
