#pragma once
// Router trace files (schema and layout in placement/proto/trace.proto): a streaming writer
// that never leaves a half-written file under the final name, and a streaming reader that
// validates every record and names the file and record in its errors.
#include <cstdint>
#include <filesystem>
#include <istream>
#include <memory>
#include <string>

#include "placement/trace/trace.h"

namespace moe::placement {

enum class TraceCompression { kNone, kZstd };

class TraceWriter {
 public:
  // Writes to `path`.partial; finish() renames it to `path`.
  TraceWriter(const std::filesystem::path& path, const ModelIdentity& model, const std::string& source,
              TraceCompression compression = TraceCompression::kZstd);
  ~TraceWriter();  // without finish(): removes the partial file
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  void write(const TokenRecord& token);
  void finish();
  int64_t tokens_written() const { return tokens_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t tokens_ = 0;
};

class TraceReader {
 public:
  explicit TraceReader(const std::filesystem::path& path);
  // Reads from any stream (bytes in memory, for tests and fuzzing); `name` labels errors.
  TraceReader(std::unique_ptr<std::istream> stream, const std::string& name);
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  const ModelIdentity& model() const { return model_; }
  const std::string& source() const { return source_; }
  // The next token, or false at the end. Throws moe::Error(kCorrupt) for a malformed record.
  bool next(TokenRecord& token);
  int64_t gaps() const { return gaps_; }  // (token, layer) pairs missing so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ModelIdentity model_;
  std::string source_;
  int64_t gaps_ = 0;
  int64_t tokens_ = 0;
};

// Whole-file helpers.
Trace read_trace(const std::filesystem::path& path, std::string* source = nullptr);
Trace read_trace_bytes(const std::string& bytes, const std::string& name);
void write_trace(const std::filesystem::path& path, const Trace& trace, const std::string& source,
                 TraceCompression compression = TraceCompression::kZstd);
// True when the file starts with the trace magic.
bool is_trace_file(const std::filesystem::path& path);

// Throws moe::Error(kCorrupt) naming `where` when the token breaks the model's bounds: layers
// out of range, unsorted or repeated, experts out of range or repeated within a layer, weights
// not one per expert or not finite.
void validate_token(const ModelIdentity& model, const TokenRecord& token, const std::string& where);

}  // namespace moe::placement
