#pragma once
// `moe pack`: writes a Hugging Face checkpoint folder as one expert store file (see
// store_format.h): embedded config and tokenizer files, resident tensors byte for byte, and
// every (layer, expert, format) blob 4 KiB aligned with its xxhash64.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/loading/tensor_slice.h"

namespace moe::offload {

struct StoreLayout {
  int num_layers = 0;
  int num_experts = 0;
  std::vector<bool> sparse;  // per layer
  // The checkpoint names of an expert's gate, up and down matrices, or slices of fused tensors
  // (loading/tensor_slice.h: those tensors are then left out of the resident ones); no gate and an
  // up bias: DS-MoE's GeLU form, whose blobs hold the bias in f32 after the matrices.
  std::function<loading::ExpertTensorNames(int layer, int expert)> expert_names;
  // Checkpoint tensors the engine never reads, left out of the store (DeepSeek-V3's
  // multi-token-prediction layer after the last one); null: none.
  std::function<bool(const std::string& name)> unused;
  // FP8 checkpoints (loading::Fp8Config): the block shape of the weight_scale_inv beside each
  // float8_e4m3fn expert matrix, which its blobs keep after the matrix; 0: none.
  int fp8_block_rows = 0, fp8_block_cols = 0;
};

// The block scales' name of an FP8 weight: "x.weight" -> "x.weight_scale_inv".
std::string fp8_scales_name(const std::string& weight_name);

struct PackOptions {
  // The checkpoint's own dtype is always stored (runs from the store are then bit-identical;
  // FP8 with its block scales); int8/int4 formats are added beside it (from FP8 and MXFP4,
  // of the dequantised values).
  std::vector<QuantFormat> extra_formats;
};

struct PackSummary {
  uint64_t file_bytes = 0;
  uint64_t resident_bytes = 0;
  uint64_t unused_bytes = 0;  // of the checkpoint's tensors left out (StoreLayout::unused)
  std::vector<std::pair<std::string, uint64_t>> format_bytes;  // per format, all experts
};

// Writes `<out>.partial` and renames it to `out` only when complete; on any error the partial
// file is removed. Throws moe::Error naming what failed.
PackSummary pack_store(const std::filesystem::path& model_dir, const std::filesystem::path& out, const StoreLayout& layout,
                       const PackOptions& options);

// "bf16" / "int8:g128" names of formats inside stores.
std::string store_format_name(const QuantFormat& format);

}  // namespace moe::offload
