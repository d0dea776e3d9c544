#include "offload/store/io_benchmark.h"

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <regex>

#include <fmt/format.h>

#include "offload/store/expert_reader.h"
#include "runtime/core/error.h"

namespace moe::offload {
namespace {

std::string run_command(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return {};
  std::string out;
  std::array<char, 4096> chunk;
  while (size_t n = std::fread(chunk.data(), 1, chunk.size(), pipe.get())) out.append(chunk.data(), n);
  return out;
}

std::string quoted(const std::filesystem::path& p) {
  std::string s = "'";
  for (char c : p.string()) s += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return s + "'";
}

// Sequential O_DIRECT reads of the whole file with 4 MiB requests: the best fio achieves over
// queue depths 1, 16 and 64 (libaio), or dd when fio is missing.
double measure_ceiling(const std::filesystem::path& file, std::string& tool) {
  if (std::system("command -v fio >/dev/null 2>&1") == 0) {
    double best = 0;
    for (int depth : {1, 16, 64}) {
      const std::string out = run_command(fmt::format(
          "fio --name=ceiling --readonly --rw=read --bs=4M --direct=1 --ioengine=libaio --iodepth={} "
          "--output-format=json --filename={} 2>/dev/null", depth, quoted(file)));
      try {
        best = std::max(best, nlohmann::json::parse(out).at("jobs").at(0).at("read").at("bw_bytes").get<double>());
      } catch (const nlohmann::json::exception&) {
      }
    }
    if (best > 0) {
      tool = "fio --rw=read --bs=4M --direct=1 --ioengine=libaio, best of iodepth 1/16/64";
      return best;
    }
  }
  tool = "dd iflag=direct bs=4M";
  const std::string out = run_command("dd if=" + quoted(file) + " of=/dev/null iflag=direct bs=4M 2>&1");
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(([0-9]+) bytes.* ([0-9.]+) s,)"))) return std::stod(m[1]) / std::stod(m[2]);
  tool.clear();
  return 0;
}

}  // namespace

IoBenchmark run_io_benchmark(const std::filesystem::path& path, const std::vector<int>& queue_depths, int passes) {
  const auto store = ExpertStore::open(path);
  const auto& experts = store->manifest().experts();
  MOE_CHECK(experts.size() > 0, ErrorCode::kInvalidArgument, "{} holds no experts to read", path.string());
  uint64_t largest = 0;
  for (const auto& e : experts) largest = std::max(largest, ExpertReader::read_bytes(e));
  IoBenchmark result;
  for (const std::string method : {"uring", "pread"}) {
    for (int depth : queue_depths) {
      ReaderOptions options;
      options.io = method;
      options.queue_depth = depth;
      options.verify_checksums = false;  // the benchmark measures I/O, not hashing
      std::unique_ptr<ExpertReader> reader;
      try {
        reader = std::make_unique<ExpertReader>(store, options);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kUnsupported) break;  // no io_uring here: pread rows only
        throw;
      }
      // One buffer per slot of the queue, reused round-robin.
      std::unique_ptr<std::byte, decltype(&std::free)> arena(
          static_cast<std::byte*>(std::aligned_alloc(4096, size_t(largest) * size_t(depth))), &std::free);
      MOE_CHECK(arena != nullptr, ErrorCode::kOutOfMemory, "cannot allocate {} read buffers", depth);
      IoBenchmarkRow row;
      row.method = reader->backend_name();
      row.queue_depth = depth;
      row.direct = reader->direct();
      const auto start = std::chrono::steady_clock::now();
      for (int pass = 0; pass < passes; ++pass) {
        // A slot's buffer is reused as soon as its read completes, keeping `depth` in flight.
        std::vector<int> free_slots;
        for (int s = depth - 1; s >= 0; --s) free_slots.push_back(s);
        for (const auto& e : experts) {
          while (free_slots.empty()) reader->wait_some();
          const int slot = free_slots.back();
          free_slots.pop_back();
          reader->submit({e.layer(), e.expert()}, e.format(), arena.get() + size_t(largest) * size_t(slot),
                         [&free_slots, slot](ExpertKey, const std::string&, const Error* error) {
                           if (error) throw *error;
                           free_slots.push_back(slot);
                         });
          row.bytes += e.nbytes();
        }
        reader->wait_all();
      }
      row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      result.rows.push_back(row);
    }
  }
  result.ceiling_bytes_per_second = measure_ceiling(path, result.ceiling_tool);
  return result;
}

}  // namespace moe::offload
