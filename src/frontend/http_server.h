// HttpServer: HTTP/1.1 on Boost.Beast/Asio — keep-alive, many connections on a few I/O threads,
// chunked streaming responses, body/header limits, timeouts and graceful shutdown.
// It knows nothing about OpenAI: each complete request goes to one HttpHandler.
//
// Threading: `io_threads` event loops, one io_context and one thread each; a connection is
// assigned to one loop when accepted and lives on that thread, so the handler and every
// HttpResponder call for that connection run serialized there (no strands, no locks).
// Work finished on other threads (a backend's tokens) comes back with HttpResponder::post():
// posts to one loop are queued in a batch and run together after one wake-up.
// Writes: bytes queued while one posted function (or the handler) runs are sent when it
// returns, with one non-blocking send per connection; only what the socket does not take at
// once goes to an asynchronous write, and what is queued while that write is in flight goes
// out with the next one. So a connection's pending chunks coalesce into one write.
//
// Lifetime: start() binds and returns; shutdown() (also run by the destructor) stops accepting,
// closes idle connections, lets in-flight responses finish until the deadline, then closes the
// rest (their disconnect callbacks fire, so handlers can abort work) and joins the threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"

namespace turbine::frontend {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;                          // 0 = pick a free port (see HttpServer::port())
  int io_threads = 2;                            // event loops (threads); < 1 counts as 1
  size_t max_body_bytes = 8u << 20;              // larger bodies are answered 413
  size_t max_header_bytes = 64u << 10;           // larger headers are answered 431
  std::chrono::milliseconds request_timeout{30'000};  // first byte -> whole request read
  std::chrono::milliseconds idle_timeout{60'000};     // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30'000};    // a write that makes no progress
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;   // "GET", "POST", ...
  std::string target;   // as sent, with the query string
  std::string path;     // target without the query string
  HttpHeaders headers;  // names lower-cased
  std::string body;
  std::chrono::steady_clock::time_point received;  // when the whole request was read

  // Value of the first header named `name` (lower case), or "" if absent.
  std::string_view header(std::string_view name) const;
};

// How a handler answers. All methods except post() must be called on the connection's strand
// (inside the handler, or in a function given to post()). Exactly one of send() or
// beginStream() ... endStream() per request. After the peer disconnected, writes are dropped.
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;
  virtual void send(int status, std::string_view content_type, std::string body,
                    const HttpHeaders& extra_headers = {}) = 0;
  // Starts a chunked response (Transfer-Encoding: chunked).
  virtual void beginStream(int status, std::string_view content_type,
                           const HttpHeaders& extra_headers = {}) = 0;
  virtual void writeStream(std::string_view data) = 0;
  virtual void endStream() = 0;
  // `fn` runs once on the strand if the client goes away before the response is complete.
  virtual void onDisconnect(std::function<void()> fn) = 0;
  virtual bool disconnected() const = 0;
  // Runs `fn` on the connection's strand. Thread-safe; `fn` runs even after a disconnect.
  virtual void post(std::function<void()> fn) = 0;
};

using HttpHandler = std::function<void(HttpRequest, std::shared_ptr<HttpResponder>)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads. IoError names the address on failure.
  Status start();
  // The bound port (the real one when options.port was 0).
  uint16_t port() const { return bound_port_; }
  // Graceful shutdown, see above. Idempotent.
  void shutdown(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  size_t openConnections() const;

  struct Impl;

 private:
  HttpServerOptions options_;
  std::shared_ptr<Impl> impl_;
  uint16_t bound_port_ = 0;
};

}  // namespace turbine::frontend
