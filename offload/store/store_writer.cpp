#include "offload/store/store_writer.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmath>
#include <fstream>
#include <set>

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

}  // namespace

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
  manifest.set_version(kStoreVersion);
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

  std::set<std::string> expert_tensors;
  for (int l = 0; l < layout.num_layers; ++l)
    if (layout.sparse.at(size_t(l)))
      for (int e = 0; e < layout.num_experts; ++e)
        for (const std::string& n : layout.expert_names(l, e)) expert_tensors.insert(n);

  PackSummary summary;
  for (const std::string& name : checkpoint.names()) {
    if (expert_tensors.count(name)) continue;
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
  for (int l = 0; l < layout.num_layers && expert_tensors.size(); ++l)
    if (layout.sparse[size_t(l)]) {
      native = checkpoint.tensor(layout.expert_names(l, 0)[0]).dtype();
      break;
    }
  std::vector<QuantFormat> formats{QuantFormat{native, 0}};
  formats.insert(formats.end(), options.extra_formats.begin(), options.extra_formats.end());
  for (const QuantFormat& f : formats) {
    manifest.add_formats(store_format_name(f));
    summary.format_bytes.emplace_back(store_format_name(f), 0);
  }

  ProgressBar progress("packing", uint64_t(expert_tensors.size() / 3 * formats.size()));
  for (int l = 0; l < layout.num_layers; ++l) {
    if (!layout.sparse.at(size_t(l))) continue;
    for (int e = 0; e < layout.num_experts; ++e) {
      const auto names = layout.expert_names(l, e);
      std::array<Tensor, 3> matrices;
      for (size_t i = 0; i < 3; ++i) {
        matrices[i] = checkpoint.tensor(names[i]);
        MOE_CHECK(matrices[i].rank() == 2 && matrices[i].dtype() == native, ErrorCode::kCorrupt,
                  "{}: expert tensor '{}' must be a {} matrix", model_dir.string(), names[i], dtype_label(native));
      }
      for (size_t fi = 0; fi < formats.size(); ++fi) {
        const QuantFormat& f = formats[fi];
        const bool quantised = f.dtype == DType::kI8 || f.dtype == DType::kI4;
        std::string blob;
        auto* entry = manifest.add_experts();
        double err_max = 0, ref_max = 0, err_sq = 0, ref_sq = 0;
        for (size_t i = 0; i < 3; ++i) {
          const Tensor& m = matrices[i];
          const int64_t rows = m.dim(0), cols = m.dim(1);
          auto* piece = entry->add_matrices();
          piece->set_name(names[i]);
          piece->set_rows(rows);
          piece->set_cols(cols);
          blob.resize(size_t(align_up(blob.size(), 64)), '\0');
          piece->set_data_offset(blob.size());
          if (!quantised) {
            piece->set_data_bytes(m.nbytes());
            blob.append(static_cast<const char*>(m.raw()), m.nbytes());
            continue;
          }
          MOE_CHECK(cols % f.group_size == 0, ErrorCode::kInvalidArgument,
                    "group size {} does not divide the {} columns of '{}'", f.group_size, cols, names[i]);
          const Tensor x = m.to_f32();
          std::vector<uint8_t> data(cpu::quantized_data_bytes(f, rows, cols));
          std::vector<float> scales(cpu::quantized_scale_count(f, rows, cols)), back(size_t(rows * cols));
          cpu::quantize_rows(x.data<float>(), rows, cols, f, data.data(), scales.data());
          cpu::dequantize_rows(data.data(), scales.data(), rows, cols, f, back.data());
          for (size_t k = 0; k < back.size(); ++k) {
            const double ref = x.data<float>()[k], diff = back[k] - ref;
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
        file.pad_to(kBlobAlignment);
        entry->set_layer(l);
        entry->set_expert(e);
        entry->set_format(store_format_name(f));
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
