#include "placement/trace/trace_io.h"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "placement/proto/trace.pb.h"
#include <xxhash.h>

#include "runtime/core/error.h"
#include "runtime/core/output_path.h"

namespace moe::placement {
namespace {

constexpr char kMagic[8] = {'M', 'O', 'E', 'T', 'R', 'A', 'C', 'E'};
// Version 2 follows every record with the XXH32 of its bytes (little endian), so a flipped byte
// in an uncompressed trace is caught too; version 1 files (no checksums) are still read.
constexpr uint32_t kVersion = 2;

void append_checksum(std::string& out, size_t payload_begin) {
  const uint32_t sum = XXH32(out.data() + payload_begin, out.size() - payload_begin, 0);
  for (int i = 0; i < 4; ++i) out.push_back(char((sum >> (8 * i)) & 0xff));
}
// The shapes a trace may describe; the writer and the reader hold files to the same bounds, so a
// trace written here is always one that reads back.
constexpr int kMaxLayers = 4096, kMaxExperts = 1 << 20;
bool plausible_model(int64_t layers, int64_t experts, int64_t top_k) {
  return layers > 0 && layers <= kMaxLayers && experts > 0 && experts <= kMaxExperts && top_k >= 0 && top_k <= experts;
}

constexpr uint64_t kMaxRecordBytes = uint64_t(64) << 20;  // far above any real token record

void append_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}

proto::TokenRouting to_proto(const TokenRecord& t) {
  proto::TokenRouting p;
  p.set_sequence_id(t.sequence_id);
  p.set_position(t.position);
  for (const LayerRouting& l : t.layers) {
    auto* c = p.add_layers();
    c->set_layer(l.layer);
    c->mutable_experts()->Add(l.experts.begin(), l.experts.end());
    c->mutable_weights()->Add(l.weights.begin(), l.weights.end());
    for (const GateGuess& g : l.guesses) {
      auto* q = c->add_guesses();
      q->set_ahead(g.ahead);
      q->mutable_experts()->Add(g.experts.begin(), g.experts.end());
    }
  }
  return p;
}

TokenRecord from_proto(const proto::TokenRouting& p) {
  TokenRecord t;
  t.sequence_id = p.sequence_id();
  t.position = p.position();
  t.layers.reserve(size_t(p.layers_size()));
  for (const auto& c : p.layers()) {
    LayerRouting l;
    l.layer = c.layer();
    l.experts.assign(c.experts().begin(), c.experts().end());
    l.weights.assign(c.weights().begin(), c.weights().end());
    for (const auto& q : c.guesses()) l.guesses.push_back({q.ahead(), {q.experts().begin(), q.experts().end()}});
    t.layers.push_back(std::move(l));
  }
  return t;
}

}  // namespace

void validate_token(const ModelIdentity& model, const TokenRecord& token, const std::string& where) {
  int32_t previous = -1;
  for (const LayerRouting& l : token.layers) {
    MOE_CHECK(l.layer >= 0 && l.layer < model.num_layers, ErrorCode::kCorrupt,
              "{}: layer {} is outside the model's {} MoE layers", where, l.layer, model.num_layers);
    MOE_CHECK(l.layer > previous, ErrorCode::kCorrupt, "{}: layers are not ascending and unique (layer {})", where, l.layer);
    previous = l.layer;
    // An empty choice is valid: a MoE++ token may use only zero-computation experts.
    MOE_CHECK(l.weights.empty() || l.weights.size() == l.experts.size(), ErrorCode::kCorrupt,
              "{}: layer {} has {} experts but {} weights", where, l.layer, l.experts.size(), l.weights.size());
    for (size_t i = 0; i < l.experts.size(); ++i) {
      MOE_CHECK(l.experts[i] >= 0 && l.experts[i] < model.num_experts, ErrorCode::kCorrupt,
                "{}: layer {} names expert {}, outside the model's {}", where, l.layer, l.experts[i], model.num_experts);
      for (size_t j = 0; j < i; ++j)
        MOE_CHECK(l.experts[j] != l.experts[i], ErrorCode::kCorrupt, "{}: layer {} names expert {} twice", where,
                  l.layer, l.experts[i]);
    }
    for (float w : l.weights)
      MOE_CHECK(std::isfinite(w), ErrorCode::kCorrupt, "{}: layer {} has a non-finite weight", where, l.layer);
    int32_t ahead = 0;
    for (const GateGuess& g : l.guesses) {
      MOE_CHECK(g.ahead > ahead && l.layer + int64_t(g.ahead) < model.num_layers, ErrorCode::kCorrupt,
                "{}: layer {} has a guess {} layers ahead (ascending, within the model's {} layers)", where, l.layer,
                g.ahead, model.num_layers);
      ahead = g.ahead;
      for (size_t i = 0; i < g.experts.size(); ++i) {
        MOE_CHECK(g.experts[i] >= 0 && g.experts[i] < model.num_experts, ErrorCode::kCorrupt,
                  "{}: layer {} guesses expert {}, outside the model's {}", where, l.layer, g.experts[i], model.num_experts);
        for (size_t j = 0; j < i; ++j)
          MOE_CHECK(g.experts[j] != g.experts[i], ErrorCode::kCorrupt, "{}: layer {} guesses expert {} twice", where,
                    l.layer, g.experts[i]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

struct TraceWriter::Impl {
  std::filesystem::path path, partial;
  ModelIdentity model;
  std::ofstream out;
  TraceCompression compression;
  ZSTD_CCtx* zstd = nullptr;
  std::string record, compressed;
  bool finished = false;

  void put(const std::string& bytes, ZSTD_EndDirective mode) {
    if (compression == TraceCompression::kNone) {
      out.write(bytes.data(), std::streamsize(bytes.size()));
    } else {
      ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
      compressed.resize(ZSTD_CStreamOutSize());
      for (;;) {
        ZSTD_outBuffer o{compressed.data(), compressed.size(), 0};
        const size_t left = ZSTD_compressStream2(zstd, &o, &in, mode);
        MOE_CHECK(!ZSTD_isError(left), ErrorCode::kInternal, "zstd compression failed: {}", ZSTD_getErrorName(left));
        out.write(compressed.data(), std::streamsize(o.pos));
        if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) break;
      }
    }
    MOE_CHECK(out.good(), ErrorCode::kIo, "cannot write {}", partial.string());
  }
};

TraceWriter::TraceWriter(const std::filesystem::path& path, const ModelIdentity& model, const std::string& source,
                         TraceCompression compression)
    : impl_(std::make_unique<Impl>()) {
  MOE_CHECK(plausible_model(model.num_layers, model.num_experts, model.top_k), ErrorCode::kInvalidArgument,
            "a trace of {} layers x {} experts (top-{}) is outside what traces hold (1 to {} layers, 1 to {} experts)",
            model.num_layers, model.num_experts, model.top_k, kMaxLayers, kMaxExperts);
  impl_->path = path;
  impl_->model = model;
  impl_->partial = partial_path(path);
  impl_->compression = compression;
  impl_->out.open(impl_->partial, std::ios::binary | std::ios::trunc);
  MOE_CHECK(impl_->out.is_open(), ErrorCode::kIo, "cannot create {}", impl_->partial.string());
  std::array<char, 16> head{};
  std::memcpy(head.data(), kMagic, 8);
  const uint32_t version = kVersion, kind = compression == TraceCompression::kZstd ? 1 : 0;
  std::memcpy(head.data() + 8, &version, 4);
  std::memcpy(head.data() + 12, &kind, 4);
  impl_->out.write(head.data(), head.size());
  if (compression == TraceCompression::kZstd) {
    impl_->zstd = ZSTD_createCCtx();
    MOE_CHECK(impl_->zstd != nullptr, ErrorCode::kOutOfMemory, "cannot create a zstd context");
    ZSTD_CCtx_setParameter(impl_->zstd, ZSTD_c_compressionLevel, 6);
  }
  proto::TraceHeader h;
  h.set_model_name(model.name);
  h.set_num_layers(model.num_layers);
  h.set_num_experts(model.num_experts);
  h.set_top_k(model.top_k);
  h.set_source(source);
  std::string record;
  append_varint(record, h.ByteSizeLong());
  const size_t payload = record.size();
  h.AppendToString(&record);
  append_checksum(record, payload);
  impl_->put(record, ZSTD_e_continue);
}

TraceWriter::~TraceWriter() {
  if (!impl_) return;
  if (impl_->zstd) ZSTD_freeCCtx(impl_->zstd);
  if (!impl_->finished) {
    impl_->out.close();
    std::error_code ignored;
    std::filesystem::remove(impl_->partial, ignored);
  }
}

void TraceWriter::write(const TokenRecord& token) {
  validate_token(impl_->model, token, fmt::format("token {} written to {}", tokens_, impl_->path.string()));
  const proto::TokenRouting p = to_proto(token);
  impl_->record.clear();
  append_varint(impl_->record, p.ByteSizeLong());
  const size_t payload = impl_->record.size();
  p.AppendToString(&impl_->record);
  append_checksum(impl_->record, payload);
  impl_->put(impl_->record, ZSTD_e_continue);
  ++tokens_;
}

void TraceWriter::finish() {
  if (impl_->compression == TraceCompression::kZstd) impl_->put(std::string(), ZSTD_e_end);
  impl_->out.close();
  MOE_CHECK(!impl_->out.fail(), ErrorCode::kIo, "cannot finish writing {}", impl_->partial.string());
  std::error_code ec;
  std::filesystem::rename(impl_->partial, impl_->path, ec);
  MOE_CHECK(!ec, ErrorCode::kIo, "cannot rename {} to {}: {}", impl_->partial.string(), impl_->path.string(), ec.message());
  impl_->finished = true;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct TraceReader::Impl {
  std::string name;
  std::unique_ptr<std::istream> stream;
  std::istream& in;
  bool zstd = false;
  bool checksummed = false;  // version 2: a checksum after every record
  ZSTD_DCtx* dctx = nullptr;
  std::vector<char> raw;       // compressed bytes read from the file
  ZSTD_inBuffer zin{nullptr, 0, 0};
  std::vector<char> buffer;    // decoded bytes not yet consumed
  size_t begin = 0;
  size_t frame_left = 0;       // zstd's hint: 0 once a frame has ended cleanly
  bool file_done = false;

  Impl(std::unique_ptr<std::istream> s, std::string n) : name(std::move(n)), stream(std::move(s)), in(*stream) {}
  ~Impl() {
    if (dctx) ZSTD_freeDCtx(dctx);
  }

  // Appends more decoded bytes to `buffer`; false when the file has none left.
  bool fill() {
    if (begin > 0 && begin * 2 > buffer.size()) {
      buffer.erase(buffer.begin(), buffer.begin() + std::ptrdiff_t(begin));
      begin = 0;
    }
    if (!zstd) {
      if (file_done) return false;
      char chunk[1 << 16];
      in.read(chunk, sizeof chunk);
      const auto got = size_t(in.gcount());
      if (got == 0) {
        MOE_CHECK(in.eof(), ErrorCode::kIo, "cannot read {}", name);
        file_done = true;
        return false;
      }
      buffer.insert(buffer.end(), chunk, chunk + got);
      return true;
    }
    for (;;) {
      if (zin.pos == zin.size) {
        if (file_done) {
          MOE_CHECK(frame_left == 0, ErrorCode::kCorrupt, "{}: the compressed stream is truncated", name);
          return false;
        }
        raw.resize(ZSTD_DStreamInSize());
        in.read(raw.data(), std::streamsize(raw.size()));
        const auto got = size_t(in.gcount());
        if (got == 0) {
          MOE_CHECK(in.eof(), ErrorCode::kIo, "cannot read {}", name);
          file_done = true;
          continue;
        }
        zin = ZSTD_inBuffer{raw.data(), got, 0};
      }
      const size_t old = buffer.size();
      buffer.resize(old + ZSTD_DStreamOutSize());
      ZSTD_outBuffer out{buffer.data() + old, ZSTD_DStreamOutSize(), 0};
      frame_left = ZSTD_decompressStream(dctx, &out, &zin);
      MOE_CHECK(!ZSTD_isError(frame_left), ErrorCode::kCorrupt, "{}: the compressed stream is corrupt ({})", name,
                ZSTD_getErrorName(frame_left));
      buffer.resize(old + out.pos);
      if (out.pos > 0) return true;
    }
  }

  size_t available() const { return buffer.size() - begin; }

  // Reads one length-delimited record into `out`; false at a clean end of stream.
  bool record(std::string& out, int64_t index) {
    uint64_t length = 0;
    for (int shift = 0;; shift += 7) {
      if (available() == 0 && !fill()) {
        MOE_CHECK(shift == 0, ErrorCode::kCorrupt, "{}: record {} is truncated", name, index);
        return false;
      }
      MOE_CHECK(shift < 64, ErrorCode::kCorrupt, "{}: record {} has a malformed length", name, index);
      const auto byte = uint8_t(buffer[begin++]);
      length |= uint64_t(byte & 0x7F) << shift;
      if (!(byte & 0x80)) break;
    }
    MOE_CHECK(length <= kMaxRecordBytes, ErrorCode::kCorrupt, "{}: record {} claims {} bytes", name, index, length);
    while (available() < length)
      MOE_CHECK(fill(), ErrorCode::kCorrupt, "{}: record {} is truncated ({} of {} bytes)", name, index, available(), length);
    out.assign(buffer.data() + begin, size_t(length));
    begin += size_t(length);
    if (checksummed) {
      while (available() < 4)
        MOE_CHECK(fill(), ErrorCode::kCorrupt, "{}: record {} is truncated (no checksum)", name, index);
      uint32_t want = 0;
      for (int i = 0; i < 4; ++i) want |= uint32_t(uint8_t(buffer[begin + size_t(i)])) << (8 * i);
      begin += 4;
      MOE_CHECK(XXH32(out.data(), out.size(), 0) == want, ErrorCode::kCorrupt, "{}: record {} fails its checksum", name, index);
    }
    return true;
  }
};

namespace {
std::unique_ptr<std::istream> open_file(const std::filesystem::path& path) {
  auto file = std::make_unique<std::ifstream>(path, std::ios::binary);
  MOE_CHECK(file->is_open(), ErrorCode::kNotFound, "cannot open trace {}", path.string());
  return file;
}
}  // namespace

TraceReader::TraceReader(const std::filesystem::path& path) : TraceReader(open_file(path), path.string()) {}

TraceReader::TraceReader(std::unique_ptr<std::istream> stream, const std::string& name)
    : impl_(std::make_unique<Impl>(std::move(stream), name)) {
  std::array<char, 16> head{};
  impl_->in.read(head.data(), head.size());
  MOE_CHECK(impl_->in.gcount() == 16 && std::memcmp(head.data(), kMagic, 8) == 0, ErrorCode::kCorrupt,
            "{} is not a router trace (bad magic)", impl_->name);
  uint32_t version = 0, kind = 0;
  std::memcpy(&version, head.data() + 8, 4);
  std::memcpy(&kind, head.data() + 12, 4);
  MOE_CHECK(version == 1 || version == kVersion, ErrorCode::kUnsupported, "{}: trace version {} (this build reads 1 and {})",
            impl_->name, version, kVersion);
  impl_->checksummed = version >= 2;
  MOE_CHECK(kind <= 1, ErrorCode::kCorrupt, "{}: unknown compression {}", impl_->name, kind);
  impl_->zstd = kind == 1;
  if (impl_->zstd) {
    impl_->dctx = ZSTD_createDCtx();
    MOE_CHECK(impl_->dctx != nullptr, ErrorCode::kOutOfMemory, "cannot create a zstd context");
  }
  std::string bytes;
  MOE_CHECK(impl_->record(bytes, 0), ErrorCode::kCorrupt, "{}: the trace has no header", impl_->name);
  proto::TraceHeader h;
  MOE_CHECK(h.ParseFromString(bytes), ErrorCode::kCorrupt, "{}: the trace header is malformed", impl_->name);
  MOE_CHECK(plausible_model(h.num_layers(), h.num_experts(), h.top_k()),
            ErrorCode::kCorrupt, "{}: impossible header ({} layers, {} experts, top-k {})", impl_->name, h.num_layers(),
            h.num_experts(), h.top_k());
  model_ = ModelIdentity{h.model_name(), h.num_layers(), h.num_experts(), h.top_k()};
  source_ = h.source();
}

TraceReader::~TraceReader() = default;

bool TraceReader::next(TokenRecord& token) {
  std::string bytes;
  if (!impl_->record(bytes, tokens_ + 1)) return false;
  proto::TokenRouting p;
  MOE_CHECK(p.ParseFromString(bytes), ErrorCode::kCorrupt, "{}: token record {} is malformed", impl_->name, tokens_);
  token = from_proto(p);
  validate_token(model_, token, fmt::format("{}: token {}", impl_->name, tokens_));
  gaps_ += model_.num_layers - int64_t(token.layers.size());
  ++tokens_;
  return true;
}

namespace {
Trace read_all(TraceReader& reader) {
  Trace trace;
  trace.model = reader.model();
  TokenRecord token;
  while (reader.next(token)) trace.tokens.push_back(std::move(token));
  trace.gaps = reader.gaps();
  return trace;
}
}  // namespace

Trace read_trace(const std::filesystem::path& path, std::string* source) {
  TraceReader reader(path);
  if (source) *source = reader.source();
  return read_all(reader);
}

void write_trace(const std::filesystem::path& path, const Trace& trace, const std::string& source,
                 TraceCompression compression) {
  TraceWriter writer(path, trace.model, source, compression);
  for (const TokenRecord& t : trace.tokens) writer.write(t);
  writer.finish();
}

Trace read_trace_bytes(const std::string& bytes, const std::string& name) {
  TraceReader reader(std::make_unique<std::istringstream>(bytes), name);
  return read_all(reader);
}

bool is_trace_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  in.read(head, 8);
  return in.gcount() == 8 && std::memcmp(head, kMagic, 8) == 0;
}

}  // namespace moe::placement
