#include "offload/store/expert_store.h"

#include <xxhash.h>

#include <fmt/format.h>

#include <fstream>

#include "offload/store/store_format.h"
#include "offload/store/store_writer.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

// An "fp8:RxC" piece's block grid [ceil(rows / R), ceil(cols / C)]; empty for other formats.
Shape fp8_grid(std::string_view format, const store::MatrixPiece& p) {
  int r = 0, c = 0;
  if (!parse_fp8_store_format(format, &r, &c)) return {};
  return {(p.rows() + r - 1) / r, (p.cols() + c - 1) / c};
}

}  // namespace

std::shared_ptr<const ExpertStore> ExpertStore::open(const std::filesystem::path& path) {
  auto s = std::shared_ptr<ExpertStore>(new ExpertStore());
  s->path_ = path;
  s->file_ = MappedFile::open(path);
  const auto bytes = s->file_->bytes();
  const StoreHeader header = decode_header(bytes, bytes.size(), path.string());
  s->manifest_ = decode_manifest(bytes, header, path.string());
  for (int i = 0; i < s->manifest_.resident_size(); ++i) s->resident_.emplace(s->manifest_.resident(i).name(), i);
  const std::string native = s->manifest_.formats_size() > 0 ? s->manifest_.formats(0) : "";
  for (int i = 0; i < s->manifest_.experts_size(); ++i) {
    const auto& e = s->manifest_.experts(i);
    MOE_CHECK(s->blobs_.emplace(std::make_pair(ExpertKey{e.layer(), e.expert()}, e.format()), i).second, ErrorCode::kCorrupt,
              "{}: expert ({}, {}) {} appears twice", path.string(), e.layer(), e.expert(), e.format());
    if (e.format() == native)
      for (int m = 0; m < e.matrices_size(); ++m) {
        s->expert_tensors_.emplace(e.matrices(m).name(), Piece{i, m});
        if (native.rfind("fp8:", 0) == 0)
          s->expert_tensors_.emplace(fp8_scales_name(e.matrices(m).name()), Piece{i, m, Piece::kScales});
        if (e.matrices(m).bias_bytes() > 0) s->expert_tensors_.emplace(e.matrices(m).bias_name(), Piece{i, m, Piece::kBias});
        if (!e.matrices(m).scales_name().empty())
          s->expert_tensors_.emplace(e.matrices(m).scales_name(), Piece{i, m, Piece::kScales});
      }
  }
  const size_t pieces = size_t(s->manifest_.resident_size() + s->manifest_.experts_size() + s->manifest_.files_size());
  s->checked_ = std::make_unique<std::atomic<bool>[]>(pieces);
  return s;
}

// Checksums cost a read of the bytes, so each piece is checked the first time it is used, not at
// every use; a piece without a recorded checksum (an older store) is taken as it is.
void ExpertStore::check_once(size_t slot, std::span<const std::byte> bytes, uint64_t want, const std::string& what) const {
  if (want == 0 || checked_[slot].load(std::memory_order_acquire)) return;
  MOE_CHECK(XXH64(bytes.data(), bytes.size(), 0) == want, ErrorCode::kCorrupt,
            "{}: the checksum of {} does not match (a corrupt store: moe verify lists every bad piece)", path_.string(), what);
  checked_[slot].store(true, std::memory_order_release);
}

ExpertStore::Verification ExpertStore::verify(const std::function<void(uint64_t, uint64_t)>& progress) const {
  Verification v;
  uint64_t total = 0;
  for (const auto& f : manifest_.files()) total += f.nbytes();
  for (const auto& t : manifest_.resident()) total += t.nbytes();
  for (const auto& e : manifest_.experts()) total += e.nbytes();
  const auto check = [&](std::span<const std::byte> bytes, uint64_t want, std::string what) {
    v.bytes += bytes.size();
    if (want == 0) {
      ++v.unrecorded;
    } else {
      ++v.checked;
      if (XXH64(bytes.data(), bytes.size(), 0) != want) v.corrupt.push_back(std::move(what));
    }
    if (progress) progress(v.bytes, total);
  };
  for (const auto& f : manifest_.files())
    check(file_->bytes().subspan(size_t(f.offset()), size_t(f.nbytes())), f.xxh64(), fmt::format("file '{}'", f.name()));
  for (const auto& t : manifest_.resident())
    check(file_->bytes().subspan(size_t(t.offset()), size_t(t.nbytes())), t.xxh64(), fmt::format("tensor '{}'", t.name()));
  for (const auto& e : manifest_.experts())
    check(mapped(e), e.xxh64(), fmt::format("expert ({}, {}) {}", e.layer(), e.expert(), e.format()));
  return v;
}

std::optional<std::string> ExpertStore::file(std::string_view name) const {
  for (int i = 0; i < manifest_.files_size(); ++i) {
    const auto& f = manifest_.files(i);
    if (f.name() != name) continue;
    const auto b = file_->bytes().subspan(size_t(f.offset()), size_t(f.nbytes()));
    check_once(size_t(manifest_.resident_size() + manifest_.experts_size() + i), b, f.xxh64(), fmt::format("file '{}'", f.name()));
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return std::nullopt;
}

void ExpertStore::extract_files(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  for (const auto& f : manifest_.files()) {
    const std::string name = f.name();
    MOE_CHECK(name.find('/') == std::string::npos && name != ".." && name != "." && !name.empty(), ErrorCode::kCorrupt,
              "{}: embedded file name '{}' is not a plain name", path_.string(), name);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    const std::string bytes = *file(name);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    MOE_CHECK(out.good(), ErrorCode::kIo, "cannot write {}", (dir / name).string());
  }
}

const store::ExpertBlob* ExpertStore::blob(ExpertKey key, std::string_view format) const {
  const auto it = blobs_.find({key, std::string(format)});
  return it == blobs_.end() ? nullptr : &manifest_.experts(it->second);
}

std::span<const std::byte> ExpertStore::mapped(const store::ExpertBlob& b) const {
  return file_->bytes().subspan(size_t(b.offset()), size_t(b.nbytes()));
}

ExpertStore::StoredMatrix ExpertStore::matrix(const store::ExpertBlob& blob, int index) const {
  QuantFormat f;
  MOE_CHECK(parse_store_format(blob.format(), &f) && index >= 0 && index < blob.matrices_size(), ErrorCode::kCorrupt,
            "{}: expert ({}, {}) has no matrix {} in format '{}'", path_.string(), blob.layer(), blob.expert(), index,
            blob.format());
  const store::MatrixPiece& p = blob.matrices(index);
  const int64_t groups = f.group_size > 0 && p.cols() % f.group_size == 0 ? p.cols() / f.group_size : 0;
  const Shape grid = fp8_grid(blob.format(), p);
  const bool mxfp4 = f.dtype == DType::kMxfp4;  // its scales piece: e8m0 exponents, a byte per 32 values
  MOE_CHECK(p.rows() > 0 && p.cols() > 0 && dtype_bytes(f.dtype, size_t(p.rows() * p.cols())) == p.data_bytes() &&
                (f.group_size == 0 || (groups > 0 && p.scales_bytes() == uint64_t(p.rows() * groups) * sizeof(float))) &&
                (grid.empty() || p.scales_bytes() == uint64_t(shape_numel(grid)) * sizeof(float)) &&
                (!mxfp4 || (p.cols() % 32 == 0 && p.scales_bytes() == uint64_t(p.rows() * (p.cols() / 32)))),
            ErrorCode::kCorrupt, "{}: matrix '{}' has the wrong size for {}", path_.string(), p.name(), blob.format());
  if (const auto it = blobs_.find({ExpertKey{blob.layer(), blob.expert()}, blob.format()}); it != blobs_.end())
    check_once(size_t(manifest_.resident_size() + it->second), mapped(blob), blob.xxh64(),
               fmt::format("expert ({}, {}) {}", blob.layer(), blob.expert(), blob.format()));
  const std::byte* base = file_->bytes().data() + blob.offset();
  StoredMatrix m;
  m.data = Tensor::view(base + p.data_offset(), f.dtype, {p.rows(), p.cols()}, file_);
  if (f.group_size > 0) m.scales = Tensor::view(base + p.scales_offset(), DType::kF32, {p.rows(), groups}, file_);
  if (!grid.empty()) m.scales = Tensor::view(base + p.scales_offset(), DType::kF32, grid, file_);
  if (mxfp4) m.scales = Tensor::view(base + p.scales_offset(), DType::kU8, {p.rows(), p.cols() / 32}, file_);
  return m;
}

bool ExpertStore::has_tensor(std::string_view name) const {
  return resident_.find(name) != resident_.end() || expert_tensors_.find(name) != expert_tensors_.end();
}

Tensor ExpertStore::tensor(std::string_view name) const {
  if (const auto it = resident_.find(name); it != resident_.end()) {
    const auto& t = manifest_.resident(it->second);
    DType dtype;
    MOE_CHECK(parse_dtype(t.dtype(), &dtype), ErrorCode::kCorrupt, "{}: tensor '{}' has unknown dtype '{}'", path_.string(),
              name, t.dtype());
    Shape shape(t.shape().begin(), t.shape().end());
    MOE_CHECK(shape_numel(shape) >= 0 && dtype_bytes(dtype, size_t(shape_numel(shape))) == t.nbytes(), ErrorCode::kCorrupt,
              "{}: tensor '{}' has {} bytes for shape {}", path_.string(), name, t.nbytes(), shape_to_string(shape));
    check_once(size_t(it->second), file_->bytes().subspan(size_t(t.offset()), size_t(t.nbytes())), t.xxh64(),
               fmt::format("tensor '{}'", t.name()));
    return Tensor::view(file_->bytes().data() + t.offset(), dtype, std::move(shape), file_);
  }
  const auto it = expert_tensors_.find(name);
  MOE_CHECK(it != expert_tensors_.end(), ErrorCode::kNotFound, "{} has no tensor '{}'", path_.string(), name);
  const auto& blob = manifest_.experts(it->second.blob);
  if (it->second.kind == Piece::kScales) return matrix(blob, it->second.matrix).scales;  // checked there
  const auto& piece = blob.matrices(it->second.matrix);
  if (it->second.kind == Piece::kBias) {  // f32 [rows], its size checked by decode_manifest
    check_once(size_t(manifest_.resident_size() + it->second.blob), mapped(blob), blob.xxh64(),
               fmt::format("expert ({}, {}) {}", blob.layer(), blob.expert(), blob.format()));
    return Tensor::view(file_->bytes().data() + blob.offset() + piece.bias_offset(), DType::kF32, {piece.rows()}, file_);
  }
  QuantFormat format;
  MOE_CHECK(parse_store_format(blob.format(), &format) && format.group_size == 0, ErrorCode::kCorrupt, "{}: bad format '{}'",
            path_.string(), blob.format());
  const DType dtype = format.dtype;
  MOE_CHECK(dtype_bytes(dtype, size_t(piece.rows() * piece.cols())) == piece.data_bytes(), ErrorCode::kCorrupt,
            "{}: matrix '{}' has the wrong size", path_.string(), name);
  check_once(size_t(manifest_.resident_size() + it->second.blob), mapped(blob), blob.xxh64(),
             fmt::format("expert ({}, {}) {}", blob.layer(), blob.expert(), blob.format()));
  return Tensor::view(file_->bytes().data() + blob.offset() + piece.data_offset(), dtype, {piece.rows(), piece.cols()}, file_);
}

}  // namespace moe::offload
