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
// Version 1: every expert blob holds gate, up and down. Version 2 adds blobs of two matrices
// with f32 biases (DS-MoE's GeLU experts: up with its bias, and down; gpt-oss's: gate_up and down,
// each with its bias, MXFP4 with its exponents), so an engine reading only version 1 refuses such
// a store by its version rather than as corrupt; a store without them is still version 1.
inline constexpr uint32_t kStoreVersion = 2;  // the newest read and written
inline constexpr uint32_t kStoreVersionGatedOnly = 1;
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
// Validates magic, version (1 or 2) and that the manifest lies inside the file; throws
// moe::Error(kCorrupt) naming `source`.
StoreHeader decode_header(std::span<const std::byte> bytes, uint64_t file_size, std::string_view source);
// Parses and checks the manifest: every offset and size inside the file, blobs aligned.
store::StoreManifest decode_manifest(std::span<const std::byte> file, const StoreHeader& header, std::string_view source);

// True when the file starts with the store magic.
bool looks_like_store(const std::filesystem::path& path);

uint64_t align_up(uint64_t value, uint64_t alignment);

// A format's name inside a store ("bf16", "int8:g128", "fp8:128x128") back to the format; false
// for others. FP8's block shape is not part of QuantFormat: parse_fp8_store_format.
bool parse_store_format(std::string_view name, QuantFormat* out);

// "fp8:RxC": float8_e4m3fn experts, each matrix followed by its f32 block scales
// [ceil(rows / R), ceil(cols / C)] (kernels/cpu/fp8.h), as the checkpoint stores them.
std::string fp8_store_format_name(int block_rows, int block_cols);
bool parse_fp8_store_format(std::string_view name, int* block_rows, int* block_cols);

}  // namespace moe::offload
