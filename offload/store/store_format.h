#pragma once
// The expert store's file layout:
//
//   [0, 4096)        header: magic "MOESTORE", version, manifest offset/size/xxh64
//   [4096, ...)      embedded files and resident tensors, 64-byte aligned
//   ...              expert blobs, each 4 KiB aligned and padded to 4 KiB (O_DIRECT reads)
//   [manifest)       the protobuf StoreManifest (offload/proto/store.proto)
//
// The header is written last and the file renamed into place, so a store with a valid header
// is complete.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "offload/proto/store.pb.h"
#include "runtime/core/dtype.h"

namespace moe::offload {

inline constexpr char kStoreMagic[8] = {'M', 'O', 'E', 'S', 'T', 'O', 'R', 'E'};
inline constexpr uint32_t kStoreVersion = 1;
inline constexpr uint64_t kHeaderBytes = 4096;
inline constexpr uint64_t kBlobAlignment = 4096;
inline constexpr uint64_t kManifestLimit = uint64_t{1} << 30;

struct StoreHeader {
  uint32_t version = kStoreVersion;
  uint64_t manifest_offset = 0;
  uint64_t manifest_bytes = 0;
  uint64_t manifest_xxh64 = 0;
};

std::string encode_header(const StoreHeader& header);  // kHeaderBytes bytes
// Validates magic, version and that the manifest lies inside the file; throws
// moe::Error(kCorrupt) naming `source`.
StoreHeader decode_header(std::span<const std::byte> bytes, uint64_t file_size, std::string_view source);
// Parses and checks the manifest: every offset and size inside the file, blobs aligned.
store::StoreManifest decode_manifest(std::span<const std::byte> file, const StoreHeader& header, std::string_view source);

// True when the file starts with the store magic.
bool looks_like_store(const std::filesystem::path& path);

uint64_t align_up(uint64_t value, uint64_t alignment);

// A format's name inside a store ("bf16", "int8:g128") back to the format; false for others.
bool parse_store_format(std::string_view name, QuantFormat* out);

}  // namespace moe::offload
