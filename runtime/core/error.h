#pragma once
// The library's one error convention: functions throw moe::Error with a code and one clear
// sentence; the CLI (and later the server) turns it into a message and an exit code.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace moe {

enum class ErrorCode {
  kInvalidArgument,  // the caller asked for something impossible (a bad flag, an impossible budget)
  kNotFound,         // a file, tensor or key that should exist does not
  kCorrupt,          // input exists but is malformed (a hostile header, a bad checksum)
  kIo,               // the OS refused a read or write
  kUnsupported,      // valid input the engine does not handle (yet)
  kOutOfMemory,      // a budget or an allocation could not be met
  kCuda,             // a CUDA, cuBLAS or NCCL call failed
  kInternal,         // a broken invariant: a bug in this project
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(code, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace moe

// Checks a condition and throws moe::Error with the message when it does not hold.
#define MOE_CHECK(cond, code, ...)          \
  do {                                      \
    if (!(cond)) ::moe::fail(code, __VA_ARGS__); \
  } while (0)

// A broken invariant: names the expression, file and line.
#define MOE_ASSERT(cond)                                                                    \
  do {                                                                                      \
    if (!(cond))                                                                            \
      ::moe::fail(::moe::ErrorCode::kInternal, "internal error: {} failed at {}:{}", #cond, \
                  __FILE__, __LINE__);                                                      \
  } while (0)
