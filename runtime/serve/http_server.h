#pragma once
// A small HTTP/1.1 server on Boost.Beast: one thread accepts (and watches SIGINT/SIGTERM), each
// connection is served by a thread of its own with blocking reads and writes bounded by socket
// timeouts, so a slow or silent client holds only its own thread. Request headers and bodies are
// bounded; past the bounds the client gets 431 or 413 and the connection closes. Responses are
// whole, or a chunked stream (server-sent events) written piece by piece, whose failed write
// tells the handler its client is gone.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace moe::serve {

struct HttpRequest {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string header(const std::string& name) const;
};

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // A whole response; extra headers as name/value pairs.
  virtual void send(int status, const std::string& content_type, const std::string& body,
                    const std::map<std::string, std::string>& headers = {}) = 0;
  // A chunked response: the headers now, then chunks; false once the client is gone.
  virtual bool start_stream(int status, const std::string& content_type) = 0;
  virtual bool write_chunk(const std::string& data) = 0;
  virtual void end_stream() = 0;
};

using HttpHandler = std::function<void(const HttpRequest&, ResponseWriter&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;  // 0: an ephemeral port (port() says which)
  uint64_t max_body_bytes = 8 << 20;
  uint32_t max_header_bytes = 16 << 10;
  int max_connections = 512;
  std::chrono::seconds io_timeout{60};  // a read or write that makes no progress this long fails
};

class HttpServer {
 public:
  // Binds now (throws moe::Error(kIo) naming the address when it cannot).
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  uint16_t port() const { return port_; }
  // Serves until stop() or SIGINT/SIGTERM; then stops accepting, calls `on_signal` (once, for a
  // signal), waits for open connections to end and returns.
  void run(const std::function<void()>& on_signal = {});
  void stop();  // from any thread
  int open_connections() const { return open_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<int> open_{0};
};

}  // namespace moe::serve
