#include "offload/store/store_writer.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmath>
#include <fstream>
#include <set>

#include "kernels/cpu/fp8.h"
#include "kernels/cpu/quantize.h"
#include "offload/store/store_format.h"
#include "runtime/core/error.h"
#include "runtime/core/output_path.h"
#include "runtime/core/progress.h"
#include "runtime/loading/safetensors.h"

namespace moe::offload {
namespace {

// Sequential writer that knows its position and pads to alignments.
class Output {
 public:
  explicit Output(const std::filesystem::path& path) : path_(path), out_(path, std::ios::binary | std::ios::trunc) {
    MOE_CHECK(out_.good(), ErrorCode::kIo, "cannot create {}", path.string());
  }
  uint64_t position() const { return position_; }
  void write(const void* data, uint64_t n) {
    out_.write(static_cast<const char*>(data), std::streamsize(n));
    MOE_CHECK(out_.good(), ErrorCode::kIo, "cannot write {} (disk full?)", path_.string());
    position_ += n;
  }
  void pad_to(uint64_t alignment) {
    const std::string zeros(size_t(align_up(position_, alignment) - position_), '\0');
    write(zeros.data(), zeros.size());
  }
  void write_header(const std::string& header) {
    out_.seekp(0);
    out_.write(header.data(), std::streamsize(header.size()));
    out_.flush();
    MOE_CHECK(out_.good(), ErrorCode::kIo, "cannot write the header of {}", path_.string());
  }
  void close_and_sync() {
    out_.close();
    MOE_CHECK(!out_.fail(), ErrorCode::kIo, "cannot close {}", path_.string());
    const int fd = ::open(path_.c_str(), O_RDONLY);
    MOE_CHECK(fd >= 0 && ::fsync(fd) == 0, ErrorCode::kIo, "cannot sync {}", path_.string());
    ::close(fd);
  }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
  uint64_t position_ = 0;
};

// Removes the partial file unless the pack completed.
struct PartialFile {
  std::filesystem::path path;
  bool keep = false;
  ~PartialFile() {
    std::error_code ec;
    if (!keep) std::filesystem::remove(path, ec);
  }
};

std::string dtype_label(DType d) { return std::string(dtype_name(d)); }

// An expert matrix of the checkpoint: its tensor and, for FP8, its block scales, for MXFP4 its
// exponents (the data then DType::kMxfp4 [rows, cols]); its bias (f32 [rows]) when it has one.
struct ExpertMatrix {
  Tensor data, block_scales, exponents, bias;
  std::string exponents_name, bias_name;
};

// gpt-oss's MXFP4 blocks of one expert, [1, rows, cols / 32, 16] u8, as the [rows, cols] matrix.
Tensor mxfp4_matrix(const Tensor& blocks, const std::string& name, const std::filesystem::path& dir) {
  MOE_CHECK(blocks.dtype() == DType::kU8 && blocks.rank() == 4 && blocks.dim(0) == 1 && blocks.dim(3) == 16 && blocks.is_contiguous(),
            ErrorCode::kCorrupt, "{}: MXFP4 expert blocks '{}' are {} {}, not u8 [1, rows, cols / 32, 16]", dir.string(), name,
            dtype_name(blocks.dtype()), shape_to_string(blocks.shape()));
  return Tensor::view(blocks.raw(), DType::kMxfp4, {blocks.dim(1), blocks.dim(2) * 32}, nullptr);  // the checkpoint outlives it
}

// The matrix's values in f32 (FP8: each value times its block's scale, kernels/cpu/fp8.h; MXFP4:
// times its block's e8m0 scale, kernels/cpu/mxfp4.h), as the kernels widen them at load.
std::vector<float> matrix_f32(const ExpertMatrix& m, const StoreLayout& layout) {
  const int64_t rows = m.data.dim(0), cols = m.data.dim(1);
  std::vector<float> out(size_t(rows * cols));
  if (!m.block_scales.defined() && !m.exponents.defined()) {
    const Tensor x = m.data.to_f32();
    std::copy_n(x.data<float>(), out.size(), out.data());
    return out;
  }
  cpu::WeightMatrix w;
  w.data = m.data.raw();
  w.dtype = m.data.dtype();
  w.rows = rows;
  w.cols = cols;
  if (m.exponents.defined()) {
    w.exponents = m.exponents.data<uint8_t>();
  } else {
    w.block_scales = m.block_scales.data<float>();
    w.block_rows = layout.fp8_block_rows;
    w.block_cols = layout.fp8_block_cols;
    w.block_stride = m.block_scales.dim(1);
  }
  for (int64_t r = 0; r < rows; ++r) cpu::row_to_f32(w, r, out.data() + r * cols);
  return out;
}

// The names of an expert's matrices in blob order: gate (when it has one), up, down.
std::vector<std::string> matrix_names(const loading::ExpertTensorNames& n) {
  std::vector<std::string> names;
  if (!n.gate.empty()) names.push_back(n.gate);
  names.push_back(n.up);
  names.push_back(n.down);
  return names;
}

// A checkpoint tensor, or the slice of one that `name` gives.
Tensor named_tensor(const loading::Checkpoint& checkpoint, const std::string& name, const std::filesystem::path& dir) {
  const loading::TensorSlice slice = loading::parse_tensor_slice(name);
  MOE_CHECK(checkpoint.has(slice.tensor), ErrorCode::kNotFound, "{} lacks tensor '{}'", dir.string(), slice.tensor);
  return loading::cut_slice(checkpoint.tensor(slice.tensor), slice, name);
}

// An expert's matrices in blob order, read (or cut) from the checkpoint and checked: `native`
// is their dtype; FP8 ones bring their block scales, MXFP4 ones their exponents, and a matrix
// with a bias its bias in f32.
std::vector<ExpertMatrix> expert_matrices(const loading::Checkpoint& checkpoint, const loading::ExpertTensorNames& expert_names,
                                          DType native, const StoreLayout& layout, const std::filesystem::path& model_dir) {
  const bool fp8 = native == DType::kF8E4M3;
  const std::vector<std::string> names = matrix_names(expert_names);
  std::vector<ExpertMatrix> matrices(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    Tensor& m = matrices[i].data;
    m = named_tensor(checkpoint, names[i], model_dir);
    const bool up = i + 2 == names.size(), down = i + 1 == names.size();
    const std::string& exponents = up ? expert_names.up_scales : down ? expert_names.down_scales : std::string();
    if (exponents.empty() && m.rank() == 3 && m.dim(0) == 1) m = m.reshape({m.dim(1), m.dim(2)});  // gpt-oss's bf16 expert
    if (!exponents.empty()) {  // MXFP4: the blocks as a matrix, its exponents [rows, cols / 32] beside
      m = mxfp4_matrix(m, names[i], model_dir);
      matrices[i].exponents_name = exponents;
      const Tensor x = named_tensor(checkpoint, exponents, model_dir);
      MOE_CHECK(x.dtype() == DType::kU8 && x.numel() == m.dim(0) * m.dim(1) / 32 && x.is_contiguous(), ErrorCode::kCorrupt,
                "{}: MXFP4 exponents '{}' are {} {}; the {} blocks imply u8 [{}, {}]", model_dir.string(), exponents,
                dtype_name(x.dtype()), shape_to_string(x.shape()), names[i], m.dim(0), m.dim(1) / 32);
      matrices[i].exponents = x.reshape({m.dim(0), m.dim(1) / 32});
    }
    const std::string& bias = up ? expert_names.up_bias : down ? expert_names.down_bias : std::string();
    if (!bias.empty()) {  // in f32, as a slot holds it
      const Tensor b = named_tensor(checkpoint, bias, model_dir);
      MOE_CHECK(b.numel() == m.dim(0) && b.is_contiguous(), ErrorCode::kCorrupt,
                "{}: expert bias '{}' has shape {}; its matrix has {} rows", model_dir.string(), bias, shape_to_string(b.shape()),
                m.dim(0));
      matrices[i].bias = b.reshape({m.dim(0)}).to_f32();
      matrices[i].bias_name = bias;
    }
    MOE_CHECK(m.rank() == 2 && m.dtype() == native, ErrorCode::kCorrupt,
              "{}: expert tensor '{}' must be a {} matrix", model_dir.string(), names[i], dtype_label(native));
    if (!fp8) continue;
    const std::string scales = fp8_scales_name(names[i]);
    MOE_CHECK(checkpoint.has(scales), ErrorCode::kNotFound, "{} lacks tensor '{}' (the block scales of the float8_e4m3fn '{}')",
              model_dir.string(), scales, names[i]);
    matrices[i].block_scales = checkpoint.tensor(scales);
    const Shape grid{cpu::fp8_blocks(m.dim(0), layout.fp8_block_rows), cpu::fp8_blocks(m.dim(1), layout.fp8_block_cols)};
    MOE_CHECK(matrices[i].block_scales.shape() == grid && matrices[i].block_scales.dtype() == DType::kF32, ErrorCode::kCorrupt,
              "{}: tensor '{}' is {} {}; blocks of {} x {} over the {} weight imply f32 {}", model_dir.string(), scales,
              dtype_name(matrices[i].block_scales.dtype()), shape_to_string(matrices[i].block_scales.shape()),
              layout.fp8_block_rows, layout.fp8_block_cols, shape_to_string(m.shape()), shape_to_string(grid));
  }
  return matrices;
}

}  // namespace

std::string fp8_scales_name(const std::string& weight_name) {
  constexpr std::string_view kSuffix = ".weight";
  const bool ends = weight_name.size() >= kSuffix.size() &&
                    weight_name.compare(weight_name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
  return (ends ? weight_name.substr(0, weight_name.size() - kSuffix.size()) : weight_name) + ".weight_scale_inv";
}

std::string store_format_name(const QuantFormat& f) {
  if (f.dtype == DType::kI8 || f.dtype == DType::kI4) return fmt::format("{}:g{}", dtype_name(f.dtype), f.group_size);
  return dtype_label(f.dtype);
}

PackSummary pack_store(const std::filesystem::path& model_dir, const std::filesystem::path& out, const StoreLayout& layout,
                       const PackOptions& options) {
  for (const QuantFormat& f : options.extra_formats)
    MOE_CHECK((f.dtype == DType::kI8 || f.dtype == DType::kI4) && f.group_size > 0 && f.group_size % 8 == 0,
              ErrorCode::kInvalidArgument, "extra store formats are int8 or int4 with a group size that is a multiple of 8");
  const loading::Checkpoint checkpoint = loading::Checkpoint::open(model_dir);
  PartialFile partial{partial_path(out)};
  Output file(partial.path);
  file.write(std::string(kHeaderBytes, '\0').data(), kHeaderBytes);

  store::StoreManifest manifest;
  // The model's folder name, not its path: a store is shipped to other machines.
  const std::filesystem::path folder = model_dir.lexically_normal();
  manifest.set_source((folder.has_filename() ? folder.filename() : folder.parent_path().filename()).string());
  manifest.set_alignment(uint32_t(kBlobAlignment));
  manifest.set_num_layers(layout.num_layers);
  manifest.set_num_experts(layout.num_experts);

  for (const char* name : {"config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "generation_config.json"}) {
    const auto path = model_dir / name;
    if (!std::filesystem::exists(path)) continue;
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    file.pad_to(64);
    auto* entry = manifest.add_files();
    entry->set_name(name);
    entry->set_offset(file.position());
    entry->set_nbytes(bytes.size());
    entry->set_xxh64(XXH64(bytes.data(), bytes.size(), 0));
    file.write(bytes.data(), bytes.size());
  }

  // The checkpoint tensors the experts are made of (a fused tensor whose slices they are, whole),
  // and FP8 experts' block scales: they travel in the blobs, not among the resident tensors.
  std::set<std::string> expert_tensors, expert_scales;
  size_t expert_count = 0;
  bool two_matrices_or_biases = false;  // DS-MoE's GeLU form, gpt-oss's experts: store version 2
  for (int l = 0; l < layout.num_layers; ++l)
    if (layout.sparse.at(size_t(l)))
      for (int e = 0; e < layout.num_experts; ++e) {
        const loading::ExpertTensorNames n = layout.expert_names(l, e);
        ++expert_count;
        two_matrices_or_biases |= n.gate.empty() || !n.up_bias.empty() || !n.down_bias.empty();
        std::vector<std::string> names = matrix_names(n);
        for (const std::string* extra : {&n.up_bias, &n.up_scales, &n.down_scales, &n.down_bias})
          if (!extra->empty()) names.push_back(*extra);
        for (const std::string& name : names) {
          const loading::TensorSlice slice = loading::parse_tensor_slice(name);
          expert_tensors.insert(slice.tensor);
          if (slice.whole() && checkpoint.has(fp8_scales_name(name))) expert_scales.insert(fp8_scales_name(name));
        }
      }
  const uint32_t version = two_matrices_or_biases ? kStoreVersion : kStoreVersionGatedOnly;
  manifest.set_version(version);

  PackSummary summary;
  for (const std::string& name : checkpoint.names()) {
    if (expert_tensors.count(name) || expert_scales.count(name)) continue;
    const loading::TensorInfo& info = checkpoint.info(name);
    if (layout.unused && layout.unused(name)) {
      summary.unused_bytes += info.nbytes();
      continue;
    }
    const Tensor t = checkpoint.tensor(name);
    file.pad_to(64);
    auto* entry = manifest.add_resident();
    entry->set_name(name);
    entry->set_dtype(dtype_label(t.dtype()));
    for (int64_t d : t.shape()) entry->add_shape(d);
    entry->set_offset(file.position());
    entry->set_nbytes(info.nbytes());
    entry->set_xxh64(XXH64(t.raw(), info.nbytes(), 0));
    file.write(t.raw(), info.nbytes());
    summary.resident_bytes += info.nbytes();
  }

  // The checkpoint's dtype first, then the quantised formats.
  DType native = DType::kBF16;
  for (int l = 0; l < layout.num_layers && expert_count > 0; ++l)
    if (layout.sparse[size_t(l)]) {
      const loading::ExpertTensorNames n = layout.expert_names(l, 0);
      native = n.up_scales.empty() ? named_tensor(checkpoint, n.up, model_dir).dtype() : DType::kMxfp4;
      break;
    }
  const bool fp8 = native == DType::kF8E4M3;
  MOE_CHECK(!fp8 || (layout.fp8_block_rows > 0 && layout.fp8_block_cols > 0), ErrorCode::kUnsupported,
            "{}: the experts are float8_e4m3fn, but the config has no quantization_config with quant_method 'fp8'",
            model_dir.string());
  std::vector<QuantFormat> formats{QuantFormat{native, 0}};
  formats.insert(formats.end(), options.extra_formats.begin(), options.extra_formats.end());
  std::vector<std::string> format_names;
  for (const QuantFormat& f : formats) {
    format_names.push_back(fp8 && format_names.empty() ? fp8_store_format_name(layout.fp8_block_rows, layout.fp8_block_cols)
                                                       : store_format_name(f));
    manifest.add_formats(format_names.back());
    summary.format_bytes.emplace_back(format_names.back(), 0);
  }

  ProgressBar progress("packing", uint64_t(expert_count * formats.size()));
  for (int l = 0; l < layout.num_layers; ++l) {
    if (!layout.sparse.at(size_t(l))) continue;
    for (int e = 0; e < layout.num_experts; ++e) {
      const loading::ExpertTensorNames expert_names = layout.expert_names(l, e);
      const std::vector<std::string> names = matrix_names(expert_names);
      const std::vector<ExpertMatrix> matrices = expert_matrices(checkpoint, expert_names, native, layout, model_dir);
      for (size_t fi = 0; fi < formats.size(); ++fi) {
        const QuantFormat& f = formats[fi];
        const bool quantised = f.dtype == DType::kI8 || f.dtype == DType::kI4;
        std::string blob;
        auto* entry = manifest.add_experts();
        double err_max = 0, ref_max = 0, err_sq = 0, ref_sq = 0;
        for (size_t i = 0; i < matrices.size(); ++i) {
          const Tensor& m = matrices[i].data;
          const int64_t rows = m.dim(0), cols = m.dim(1);
          auto* piece = entry->add_matrices();
          piece->set_name(names[i]);
          piece->set_rows(rows);
          piece->set_cols(cols);
          blob.resize(size_t(align_up(blob.size(), 64)), '\0');
          piece->set_data_offset(blob.size());
          if (!quantised) {  // the checkpoint's bytes (FP8: then its block scales, where the slot layout has them)
            piece->set_data_bytes(m.nbytes());
            blob.append(static_cast<const char*>(m.raw()), m.nbytes());
            if (const Tensor& s = matrices[i].block_scales.defined() ? matrices[i].block_scales : matrices[i].exponents; s.defined()) {
              blob.resize(size_t(align_up(blob.size(), 64)), '\0');
              piece->set_scales_name(matrices[i].exponents_name);  // MXFP4's; FP8's are named by fp8_scales_name
              piece->set_scales_offset(blob.size());
              piece->set_scales_bytes(s.nbytes());
              blob.append(static_cast<const char*>(s.raw()), s.nbytes());
            }
            continue;
          }
          MOE_CHECK(cols % f.group_size == 0, ErrorCode::kInvalidArgument,
                    "group size {} does not divide the {} columns of '{}'", f.group_size, cols, names[i]);
          const std::vector<float> x = matrix_f32(matrices[i], layout);
          std::vector<uint8_t> data(cpu::quantized_data_bytes(f, rows, cols));
          std::vector<float> scales(cpu::quantized_scale_count(f, rows, cols)), back(size_t(rows * cols));
          cpu::quantize_rows(x.data(), rows, cols, f, data.data(), scales.data());
          cpu::dequantize_rows(data.data(), scales.data(), rows, cols, f, back.data());
          for (size_t k = 0; k < back.size(); ++k) {
            const double ref = x[k], diff = back[k] - ref;
            err_max = std::max(err_max, std::fabs(diff));
            ref_max = std::max(ref_max, std::fabs(ref));
            err_sq += diff * diff;
            ref_sq += ref * ref;
          }
          piece->set_data_bytes(data.size());
          blob.append(reinterpret_cast<const char*>(data.data()), data.size());
          blob.resize(size_t(align_up(blob.size(), 64)), '\0');
          piece->set_scales_offset(blob.size());
          piece->set_scales_bytes(scales.size() * sizeof(float));
          blob.append(reinterpret_cast<const char*>(scales.data()), scales.size() * sizeof(float));
        }
        for (size_t i = 0; i < matrices.size(); ++i) {  // biases after the matrices, up's then down's, where a slot has them
          const Tensor& bias = matrices[i].bias;
          if (!bias.defined()) continue;
          blob.resize(size_t(align_up(blob.size(), 64)), '\0');
          auto* piece = entry->mutable_matrices(int(i));
          piece->set_bias_name(matrices[i].bias_name);
          piece->set_bias_offset(blob.size());
          piece->set_bias_bytes(bias.nbytes());
          blob.append(static_cast<const char*>(bias.raw()), bias.nbytes());
        }
        file.pad_to(kBlobAlignment);
        entry->set_layer(l);
        entry->set_expert(e);
        entry->set_format(format_names[fi]);
        entry->set_offset(file.position());
        entry->set_nbytes(blob.size());
        entry->set_xxh64(XXH64(blob.data(), blob.size(), 0));
        entry->set_max_rel_error(ref_max > 0 ? err_max / ref_max : 0);
        entry->set_rms_rel_error(ref_sq > 0 ? std::sqrt(err_sq / ref_sq) : 0);
        file.write(blob.data(), blob.size());
        summary.format_bytes[fi].second += blob.size();
        progress.advance();
      }
    }
  }
  progress.finish();

  file.pad_to(kBlobAlignment);
  std::string encoded;
  MOE_CHECK(manifest.SerializeToString(&encoded), ErrorCode::kInternal, "cannot serialise the store manifest");
  StoreHeader header;
  header.version = version;
  header.manifest_offset = file.position();
  header.manifest_bytes = encoded.size();
  header.manifest_xxh64 = XXH64(encoded.data(), encoded.size(), 0);
  file.write(encoded.data(), encoded.size());
  file.pad_to(kBlobAlignment);  // the last blob's rounded-up O_DIRECT read stays inside the file
  summary.file_bytes = file.position();
  file.write_header(encode_header(header));
  file.close_and_sync();
  std::error_code ec;
  std::filesystem::rename(partial.path, out, ec);
  MOE_CHECK(!ec, ErrorCode::kIo, "cannot rename {} to {}: {}", partial.path.string(), out.string(), ec.message());
  partial.keep = true;
  return summary;
}

}  // namespace moe::offload
