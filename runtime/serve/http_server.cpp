#include "runtime/serve/http_server.h"

#include <sys/socket.h>
#include <utility>
#include <sys/time.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "runtime/core/error.h"

namespace moe::serve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string HttpRequest::header(const std::string& name) const {
  const auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

namespace {

const char* kServerName = "moe";

// One connection's responses, written with blocking calls.
class SocketWriter final : public ResponseWriter {
 public:
  SocketWriter(tcp::socket& socket, bool keep_alive) : socket_(socket), keep_alive_(keep_alive) {}

  void send(int status, const std::string& content_type, const std::string& body,
            const std::map<std::string, std::string>& headers = {}) override {
    http::response<http::string_body> res{http::status(status), 11};
    res.set(http::field::server, kServerName);
    res.set(http::field::content_type, content_type);
    for (const auto& [name, value] : headers) res.set(name, value);
    res.keep_alive(keep_alive_);
    res.body() = body;
    res.prepare_payload();
    beast::error_code ec;
    http::write(socket_, res, ec);
    ok_ = !ec;
    sent_ = true;
  }

  bool start_stream(int status, const std::string& content_type) override {
    http::response<http::empty_body> res{http::status(status), 11};
    res.set(http::field::server, kServerName);
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(false);  // a stream ends its connection
    res.chunked(true);
    http::response_serializer<http::empty_body> serializer{res};
    beast::error_code ec;
    http::write_header(socket_, serializer, ec);
    ok_ = !ec;
    sent_ = true;
    streaming_ = true;
    return ok_;
  }

  bool write_chunk(const std::string& data) override {
    if (!ok_ || data.empty()) return ok_;
    beast::error_code ec;
    asio::write(socket_, http::make_chunk(asio::buffer(data)), ec);
    ok_ = !ec;
    return ok_;
  }

  void end_stream() override {
    if (!ok_) return;
    beast::error_code ec;
    asio::write(socket_, http::make_chunk_last(), ec);
    ok_ = false;  // the connection closes after a stream
  }

  bool sent() const { return sent_; }
  bool reusable() const { return ok_ && keep_alive_ && !streaming_; }

 private:
  tcp::socket& socket_;
  bool keep_alive_;
  bool ok_ = true, sent_ = false, streaming_ = false;
};

// Before closing on a refused request, reads (and drops) what the client is still sending, for a
// short while: closing with unread data resets the connection, and the client would see a broken
// pipe instead of the answer.
void drain(tcp::socket& socket) {
  timeval tv{};
  tv.tv_sec = 1;
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  beast::error_code ec;
  socket.shutdown(tcp::socket::shutdown_send, ec);
  char sink[64 << 10];
  for (uint64_t total = 0; total < (uint64_t(64) << 20);) {
    const size_t n = socket.read_some(asio::buffer(sink), ec);
    if (ec || n == 0) break;
    total += n;
  }
}

void set_timeouts(tcp::socket& socket, std::chrono::seconds timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count();
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string error_json(const std::string& message, const std::string& type) {
  // The OpenAI error shape, for the few answers the HTTP layer gives itself.
  std::string escaped;
  for (const char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return "{\"error\": {\"message\": \"" + escaped + "\", \"type\": \"" + type + "\", \"param\": null, \"code\": null}}";
}

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler handler;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::signal_set signals{io, SIGINT, SIGTERM};
  std::function<void()> on_signal;
  std::mutex mutex;
  std::condition_variable closed;
  std::atomic<bool> stopping{false};
  std::map<int, bool> connections;  // socket -> handling a request now (under mutex)

  void set_busy(int fd, bool busy) {
    std::lock_guard lock(mutex);
    connections[fd] = busy;
  }
  // Idle keep-alive connections are woken (their read ends) so that stopping does not wait for
  // their timeouts; busy ones close after their response.
  void wake_idle() {
    std::lock_guard lock(mutex);
    for (const auto& [fd, busy] : connections)
      if (!busy) ::shutdown(fd, SHUT_RDWR);
  }

  void serve(tcp::socket socket, std::atomic<int>& open) {
    set_timeouts(socket, options.io_timeout);
    const int fd = socket.native_handle();
    set_busy(fd, false);
    if (stopping.load()) ::shutdown(fd, SHUT_RDWR);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options.max_body_bytes);
      parser.header_limit(options.max_header_bytes);
      beast::error_code ec;
      http::read(socket, buffer, parser, ec);
      if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset) break;
      if (ec) {
        SocketWriter writer(socket, false);
        if (ec == http::error::body_limit)
          writer.send(413, "application/json", error_json("the request body is over the server's limit", "invalid_request_error"));
        else if (ec == http::error::header_limit)
          writer.send(431, "application/json", error_json("the request headers are over the server's limit", "invalid_request_error"));
        else if (ec != asio::error::would_block && ec != asio::error::timed_out)
          writer.send(400, "application/json", error_json("malformed HTTP request: " + ec.message(), "invalid_request_error"));
        if (writer.sent()) drain(socket);
        break;
      }
      set_busy(fd, true);
      const http::request<http::string_body>& raw = parser.get();
      HttpRequest request;
      request.method = std::string(raw.method_string());
      request.target = std::string(raw.target());
      for (const auto& field : raw) {
        std::string name(field.name_string());
        for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
        request.headers[name] = std::string(field.value());
      }
      request.body = raw.body();
      SocketWriter writer(socket, raw.keep_alive() && !stopping.load());
      try {
        handler(request, writer);
      } catch (const std::exception& e) {
        if (!writer.sent()) writer.send(500, "application/json", error_json(e.what(), "server_error"));
      }
      if (!writer.sent()) writer.send(500, "application/json", error_json("no response", "server_error"));
      if (!writer.reusable()) break;
      set_busy(fd, false);
      if (stopping.load()) break;
    }
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    {
      std::lock_guard lock(mutex);
      connections.erase(fd);
      --open;
    }
    socket.close(ignored);  // after leaving the registry: the descriptor may be reused at once
    closed.notify_all();
  }

  void accept(std::atomic<int>& open) {
    acceptor.async_accept([this, &open](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (!stopping.load()) accept(open);
        return;
      }
      if (open.load() >= options.max_connections) {  // over the limit: answered and closed at once
        set_timeouts(socket, std::chrono::seconds(2));
        SocketWriter writer(socket, false);
        writer.send(503, "application/json", error_json("too many open connections", "server_error"), {{"Retry-After", "1"}});
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        {
          std::lock_guard lock(mutex);
          ++open;
        }
        std::thread([this, &open, s = std::move(socket)]() mutable { serve(std::move(s), open); }).detach();
      }
      accept(open);
    });
  }
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
  beast::error_code ec;
  const auto address = asio::ip::make_address(impl_->options.host, ec);
  MOE_CHECK(!ec, ErrorCode::kInvalidArgument, "--host {} is not an IP address", impl_->options.host);
  const tcp::endpoint endpoint(address, impl_->options.port);
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  MOE_CHECK(!ec, ErrorCode::kIo, "cannot listen on {}:{}: {}", impl_->options.host, impl_->options.port, ec.message());
  port_ = impl_->acceptor.local_endpoint().port();
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::run(const std::function<void()>& on_signal) {
  Impl& s = *impl_;
  s.on_signal = on_signal;
  s.signals.async_wait([this](beast::error_code ec, int) {
    if (ec) return;
    if (impl_->on_signal) impl_->on_signal();
    stop();
  });
  s.accept(open_);
  s.io.run();
  // Stopped: wait for the connections' threads (their requests finish or are cancelled).
  std::unique_lock lock(s.mutex);
  s.closed.wait(lock, [&] { return open_.load() == 0; });
}

void HttpServer::stop() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  asio::post(s.io, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    s.signals.cancel(ignored);
  });
  s.wake_idle();
}

}  // namespace moe::serve
