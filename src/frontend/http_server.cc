#include "frontend/http_server.h"

#include <pthread.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <optional>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "frontend/errors.h"

namespace turbine::frontend {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kReadChunk = 4096;
constexpr auto kLingerTime = std::chrono::seconds(1);

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) { return lower(a) == lower(b); }

}  // namespace

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

class Connection;

// One event loop: an io_context run by one thread, plus the inbox of work posted to it from
// other threads. The inbox is drained in batches: one wake-up of the loop per batch, however
// many posts arrived; writes queued by one posted function are sent when it returns.
struct Worker {
  struct Posted {
    std::shared_ptr<Connection> conn;  // keeps the connection alive until `fn` ran
    std::function<void()> fn;
  };

  net::io_context ioc{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::thread thread;
  // Once false (after shutdown), post() drops work instead of queueing it on an io_context that
  // nobody runs any more.
  std::mutex inbox_mu;
  std::vector<Posted> inbox;    // guarded by inbox_mu
  bool drain_posted = false;    // guarded by inbox_mu
  bool accepting_posts = true;  // guarded by inbox_mu
  // Touched only on the loop's thread.
  std::vector<Posted> running;
  bool in_batch = false;
  std::vector<std::shared_ptr<Connection>> dirty;  // connections with deferred writes

  void post(std::shared_ptr<Connection> conn, std::function<void()> fn);
  void drain();
  void flushDirty();
};

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  // Declared before the event loops so they outlive the handlers those destroy.
  std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;  // guarded by mu
  HttpServerOptions options;
  HttpHandler handler;
  std::atomic<bool> draining{false};
  std::atomic<bool> shut_down{false};
  std::vector<std::unique_ptr<Worker>> workers;  // fixed once start() ran
  std::optional<tcp::acceptor> acceptor;         // on workers[0]
  size_t next_worker = 0;                        // round robin; touched only by the acceptor

  void accept();
  void remove(Connection* c) {
    std::lock_guard<std::mutex> lock(mu);
    connections.erase(c);
  }
  std::vector<std::shared_ptr<Connection>> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::shared_ptr<Connection>> out;
    for (auto& [p, w] : connections) {
      if (auto c = w.lock()) out.push_back(std::move(c));
    }
    return out;
  }
};

// One TCP connection. Every member is touched only on its worker's thread.
class Connection : public HttpResponder, public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::shared_ptr<HttpServer::Impl> server, Worker* worker)
      : server_(std::move(server)), worker_(worker), socket_(std::move(socket)),
        timer_(socket_.get_executor()) {}

  void start() {
    beast::error_code ignored;
    socket_.non_blocking(true, ignored);  // direct writes return would_block instead of waiting
    readRequest();
  }
  void drain() {
    if (phase_ == Phase::kIdle) close();
  }
  void forceClose() { close(); }
  net::any_io_executor executor() { return socket_.get_executor(); }
  // Sends what was queued while writes were deferred (during a posted function or the handler).
  void flushDeferred();

  // HttpResponder.
  void send(int status, std::string_view content_type, std::string body,
            const HttpHeaders& extra_headers) override;
  void beginStream(int status, std::string_view content_type,
                   const HttpHeaders& extra_headers) override;
  void writeStream(std::string_view data) override;
  void endStream() override;
  void onDisconnect(std::function<void()> fn) override { on_disconnect_ = std::move(fn); }
  bool disconnected() const override { return peer_gone_; }
  void post(std::function<void()> fn) override { worker_->post(shared_from_this(), std::move(fn)); }

 private:
  enum class Phase { kIdle, kReading, kResponding, kClosing, kClosed };

  void readRequest();
  void rawRead();
  void onRawRead(beast::error_code ec, size_t n);
  void parseHeader();
  void onHeader(beast::error_code ec);
  void readBody();
  void onReadError(beast::error_code ec);
  void dispatch();
  void sendErrorAndClose(const ApiError& error);
  std::string head(int status, std::string_view content_type, const HttpHeaders& extra);
  void enqueue(std::string_view data);
  void writeNow();
  void startWrite();
  void writeSome();
  void onWrite(beast::error_code ec, size_t n);
  void maybeFinish();
  void finishResponse();
  void lingerClose();
  void close();
  void armTimer(std::chrono::steady_clock::duration d);
  void startTimer();
  void cancelTimer();
  size_t sendQueueBytes();  // bytes the kernel holds for the peer (SIZE_MAX if unknown)
  bool writeProgressed();   // a write is in flight and its send queue shrank since last looked

  std::shared_ptr<HttpServer::Impl> server_;  // first: the socket dies before the io_context
  Worker* worker_;                            // owned by server_
  tcp::socket socket_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Phase phase_ = Phase::kIdle;
  bool raw_read_pending_ = false;
  bool keep_alive_ = true;
  bool response_started_ = false;
  bool response_done_ = false;
  bool peer_gone_ = false;
  std::function<void()> on_disconnect_;
  std::string out_pending_;   // queued, not yet handed to the socket
  std::string out_writing_;   // owned by the asynchronous write in flight
  size_t written_ = 0;        // bytes of out_writing_ the socket has taken
  size_t send_queue_mark_ = SIZE_MAX;  // sendQueueBytes() when the write timeout last moved
  bool writing_ = false;      // an asynchronous write is in flight
  bool in_handler_ = false;   // writes are deferred until the handler returns
  bool flush_queued_ = false; // on worker_->dirty, or flushed when the handler returns
  uint64_t timer_gen_ = 0;
  bool timer_armed_ = false;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
};

void Worker::post(std::shared_ptr<Connection> conn, std::function<void()> fn) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(inbox_mu);
    // The parameters (`fn`, maybe the last reference to the connection) are destroyed after
    // the lock is released: a parameter outlives the function's locals.
    if (!accepting_posts) return;
    inbox.push_back(Posted{std::move(conn), std::move(fn)});
    wake = !drain_posted;
    drain_posted = true;
  }
  if (wake) net::post(ioc, [this] { drain(); });
}

void Worker::drain() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu);
    running.swap(inbox);
    drain_posted = false;
  }
  // Writes are flushed after each posted function, not at the end of the batch: one function
  // (a job's drainInbox) carries every queued chunk of its connection, so that is where they
  // coalesce, and the first connections of a large batch do not wait for the last ones.
  for (auto& p : running) {
    in_batch = true;
    p.fn();
    in_batch = false;
    flushDirty();
  }
  running.clear();  // keeps its capacity: no allocation per batch once warm
}

void Worker::flushDirty() {
  // flushDeferred() may close a connection, whose disconnect callback may queue more writes:
  // take the list first.
  std::vector<std::shared_ptr<Connection>> batch;
  batch.swap(dirty);
  for (auto& c : batch) c->flushDeferred();
  batch.clear();
  if (dirty.empty()) dirty.swap(batch);  // reuse the capacity
}

void Connection::readRequest() {
  if (phase_ == Phase::kClosed) return;
  if (server_->draining.load()) return close();
  phase_ = Phase::kIdle;
  if (buffer_.size() > 0) return parseHeader();
  armTimer(server_->options.idle_timeout);
  if (!raw_read_pending_) rawRead();
}

void Connection::rawRead() {
  raw_read_pending_ = true;
  socket_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            self->onRawRead(ec, n);
                          });
}

void Connection::onRawRead(beast::error_code ec, size_t n) {
  raw_read_pending_ = false;
  if (ec) {
    // During a response this is how a disconnect shows up; otherwise the connection is done.
    return close();
  }
  buffer_.commit(n);
  switch (phase_) {
    case Phase::kResponding:
      // The client sent its next request early: it is alive, so stop watching (a later
      // disconnect still shows up as a failed write). Invariant: a raw read is only pending
      // while buffer_ is empty, so it never races the parser's own reads.
      return;
    case Phase::kIdle:
      return parseHeader();
    case Phase::kClosing:
      buffer_.consume(buffer_.size());
      return rawRead();
    default:
      return;
  }
}

void Connection::parseHeader() {
  phase_ = Phase::kReading;
  parser_.emplace();
  parser_->body_limit(server_->options.max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_header_bytes));
  armTimer(server_->options.request_timeout);
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            self->onHeader(ec);
                          });
}

void Connection::onHeader(beast::error_code ec) {
  if (ec) return onReadError(ec);
  const auto& msg = parser_->get();
  auto expect = msg[http::field::expect];
  if (!parser_->is_done() && iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
    enqueue("HTTP/1.1 100 Continue\r\n\r\n");
  }
  readBody();
}

void Connection::readBody() {
  if (parser_->is_done()) return dispatch();
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) {
                     if (ec) return self->onReadError(ec);
                     self->dispatch();
                   });
}

void Connection::onReadError(beast::error_code ec) {
  cancelTimer();
  if (ec == http::error::body_limit) {
    return sendErrorAndClose(payloadTooLargeError(server_->options.max_body_bytes));
  }
  if (ec == http::error::header_limit) {
    ApiError e = badRequest("request headers exceed the limit of " +
                            std::to_string(server_->options.max_header_bytes) + " bytes");
    e.http_status = 431;
    return sendErrorAndClose(e);
  }
  if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return sendErrorAndClose(badRequest("malformed HTTP request: " + ec.message()));
  }
  close();  // EOF, reset, timeout: nobody to answer
}

void Connection::dispatch() {
  cancelTimer();
  auto msg = parser_->release();
  parser_.reset();
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  req.path = req.target.substr(0, req.target.find('?'));
  for (const auto& f : msg) {
    auto name = f.name_string();
    req.headers.emplace_back(lower(std::string_view(name.data(), name.size())), std::string(f.value()));
  }
  req.body = std::move(msg.body());
  req.received = std::chrono::steady_clock::now();
  keep_alive_ = msg.keep_alive() && !server_->draining.load();
  phase_ = Phase::kResponding;
  response_started_ = false;
  response_done_ = false;
  if (!raw_read_pending_ && buffer_.size() == 0) rawRead();  // notices a client that goes away
  auto self = shared_from_this();  // the handler may drop its responder
  in_handler_ = true;
  try {
    server_->handler(std::move(req), self);
  } catch (const std::exception& e) {
    if (!response_started_) {
      send(500, "application/json", errorBody(apiErrorFromStatus(internalError(e.what()))), {});
    }
  }
  in_handler_ = false;
  if (flush_queued_) flushDeferred();
}

void Connection::sendErrorAndClose(const ApiError& error) {
  phase_ = Phase::kResponding;
  keep_alive_ = false;
  response_started_ = false;
  HttpHeaders extra;
  if (error.retry_after_s > 0) extra.emplace_back("Retry-After", std::to_string(error.retry_after_s));
  send(error.http_status, "application/json", errorBody(error), extra);
}

std::string Connection::head(int status, std::string_view content_type, const HttpHeaders& extra) {
  std::string h = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\n", status,
                              httpReasonPhrase(status), content_type);
  for (const auto& [k, v] : extra) fmt::format_to(std::back_inserter(h), "{}: {}\r\n", k, v);
  if (!keep_alive_ || server_->draining.load()) {
    keep_alive_ = false;
    h += "Connection: close\r\n";
  }
  return h;
}

void Connection::send(int status, std::string_view content_type, std::string body,
                      const HttpHeaders& extra_headers) {
  if (phase_ != Phase::kResponding || response_started_) return;
  response_started_ = true;
  std::string out = head(status, content_type, extra_headers);
  fmt::format_to(std::back_inserter(out), "Content-Length: {}\r\n\r\n", body.size());
  out += body;
  response_done_ = true;
  enqueue(out);
  maybeFinish();
}

void Connection::beginStream(int status, std::string_view content_type,
                             const HttpHeaders& extra_headers) {
  if (phase_ != Phase::kResponding || response_started_) return;
  response_started_ = true;
  std::string out = head(status, content_type, extra_headers);
  out += "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
  enqueue(out);
}

void Connection::writeStream(std::string_view data) {
  if (phase_ != Phase::kResponding || !response_started_ || response_done_ || data.empty()) return;
  if (peer_gone_) return;
  // Chunk framing straight into the pending buffer: "<hex size>\r\n<data>\r\n".
  char size[2 * sizeof(size_t) + 2];
  char* end = size + sizeof(size);
  char* p = end;
  *--p = '\n';
  *--p = '\r';
  size_t n = data.size();
  do {
    *--p = "0123456789abcdef"[n & 15];
    n >>= 4;
  } while (n != 0);
  out_pending_.reserve(out_pending_.size() + static_cast<size_t>(end - p) + data.size() + 2);
  out_pending_.append(p, end);
  out_pending_.append(data);
  enqueue("\r\n");
}

void Connection::endStream() {
  if (phase_ != Phase::kResponding || !response_started_ || response_done_) return;
  response_done_ = true;
  enqueue("0\r\n\r\n");
  maybeFinish();
}

void Connection::enqueue(std::string_view data) {
  if (peer_gone_ || phase_ == Phase::kClosed) return;
  out_pending_.append(data);
  if (writing_ || flush_queued_) return;  // the write in flight / the queued flush takes it
  if (in_handler_) {
    flush_queued_ = true;  // dispatch() flushes when the handler returns
  } else if (worker_->in_batch) {
    flush_queued_ = true;
    worker_->dirty.push_back(shared_from_this());
  } else {
    writeNow();
  }
}

void Connection::flushDeferred() {
  flush_queued_ = false;
  if (phase_ == Phase::kClosed || writing_) return;
  if (!out_pending_.empty()) writeNow();
  if (!writing_ && out_pending_.empty() && phase_ == Phase::kResponding) {
    cancelTimer();
    maybeFinish();
  }
}

// One non-blocking send; what the socket does not take goes to an asynchronous write.
void Connection::writeNow() {
  beast::error_code ec;
  size_t n = socket_.write_some(net::buffer(out_pending_), ec);
  if (ec == net::error::would_block || ec == net::error::try_again) {
    ec = {};
    n = 0;
  }
  if (ec) return close();
  out_pending_.erase(0, n);
  if (!out_pending_.empty()) startWrite();
}

void Connection::startWrite() {
  out_writing_.swap(out_pending_);
  out_pending_.clear();
  written_ = 0;
  writing_ = true;
  writeSome();
}

// write_timeout means "no progress for that long", so a slow reader that keeps reading is never
// cut off, however large the backlog (one async_write of several MB used to be timed as a
// whole). Progress is seen twice: every piece the socket takes pushes the deadline back, and at
// the deadline a send queue that has shrunk since (the peer is reading; the kernel reports a
// full socket writable again only after about a third of its buffer has drained) does too.
void Connection::writeSome() {
  if (phase_ == Phase::kResponding) {
    armTimer(server_->options.write_timeout);
    send_queue_mark_ = sendQueueBytes();
  }
  socket_.async_write_some(net::buffer(out_writing_.data() + written_, out_writing_.size() - written_),
                           [self = shared_from_this()](beast::error_code ec, size_t n) { self->onWrite(ec, n); });
}

void Connection::onWrite(beast::error_code ec, size_t n) {
  if (!ec && (written_ += n) < out_writing_.size()) return writeSome();
  writing_ = false;
  out_writing_.clear();
  if (ec) return close();
  if (!out_pending_.empty()) return startWrite();
  if (phase_ == Phase::kResponding) {
    cancelTimer();
    maybeFinish();
  }
}

void Connection::maybeFinish() {
  if (phase_ == Phase::kResponding && response_done_ && !writing_ && out_pending_.empty()) {
    finishResponse();
  }
}

void Connection::finishResponse() {
  on_disconnect_ = nullptr;
  response_started_ = false;
  response_done_ = false;
  if (!keep_alive_ || server_->draining.load()) return lingerClose();
  readRequest();
}

void Connection::lingerClose() {
  // Half-close and read what the client still sends, so it sees our answer rather than a reset.
  phase_ = Phase::kClosing;
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  buffer_.consume(buffer_.size());
  armTimer(kLingerTime);
  if (!raw_read_pending_) rawRead();
}

void Connection::close() {
  if (phase_ == Phase::kClosed) return;
  bool was_responding = phase_ == Phase::kResponding;
  phase_ = Phase::kClosed;
  ++timer_gen_;  // really stop the timer, so a long idle wait does not keep us alive
  timer_.cancel();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  server_->remove(this);
  if (was_responding) {
    peer_gone_ = true;
    auto fn = std::move(on_disconnect_);
    on_disconnect_ = nullptr;
    if (fn) fn();
  }
}

// One timer per connection, re-armed lazily: armTimer() only moves a deadline, and the wait is
// restarted only when the new deadline is earlier than the pending one, so streaming writes
// (which push the deadline on every chunk) cost no timer operations.
void Connection::armTimer(std::chrono::steady_clock::duration d) {
  deadline_ = std::chrono::steady_clock::now() + d;
  if (timer_armed_ && timer_.expiry() <= deadline_) return;
  startTimer();
}

void Connection::startTimer() {
  uint64_t gen = ++timer_gen_;
  timer_armed_ = true;
  timer_.expires_at(deadline_);
  timer_.async_wait([self = shared_from_this(), gen](beast::error_code) {
    if (gen != self->timer_gen_ || self->phase_ == Phase::kClosed) return;
    self->timer_armed_ = false;
    if (self->deadline_ == std::chrono::steady_clock::time_point::max()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now >= self->deadline_) {
      if (!self->writeProgressed()) return self->close();
      self->deadline_ = now + self->server_->options.write_timeout;
    }
    self->startTimer();
  });
}

size_t Connection::sendQueueBytes() {
  int queued = 0;
  if (::ioctl(socket_.native_handle(), TIOCOUTQ, &queued) != 0 || queued < 0) return SIZE_MAX;
  return static_cast<size_t>(queued);
}

bool Connection::writeProgressed() {
  if (!writing_ || phase_ != Phase::kResponding) return false;
  const size_t queued = sendQueueBytes();
  if (queued >= send_queue_mark_) return false;
  send_queue_mark_ = queued;
  return true;
}

void Connection::cancelTimer() { deadline_ = std::chrono::steady_clock::time_point::max(); }

void HttpServer::Impl::accept() {
  Worker* w = workers[next_worker++ % workers.size()].get();
  acceptor->async_accept(w->ioc, [this, w](beast::error_code ec, tcp::socket socket) {
    if (!acceptor->is_open() || draining.load()) return;
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto conn = std::make_shared<Connection>(std::move(socket), shared_from_this(), w);
      {
        std::lock_guard<std::mutex> lock(mu);
        connections.emplace(conn.get(), conn);
      }
      net::post(w->ioc, [conn] { conn->start(); });
    }
    accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : options_(std::move(options)), impl_(std::make_shared<Impl>()) {
  impl_->options = options_;
  impl_->handler = std::move(handler);
  int n = std::max(1, options_.io_threads);
  for (int i = 0; i < n; ++i) impl_->workers.push_back(std::make_unique<Worker>());
  impl_->acceptor.emplace(impl_->workers[0]->ioc);
}

HttpServer::~HttpServer() { shutdown(std::chrono::seconds(1)); }

Status HttpServer::start() {
  beast::error_code ec;
  auto address = net::ip::make_address(options_.host, ec);
  if (ec) return invalidArgument("--host: not an IP address: '" + options_.host + "'");
  tcp::endpoint endpoint(address, options_.port);
  std::string where = fmt::format("{}:{}", options_.host, options_.port);
  auto& acc = *impl_->acceptor;
  if (acc.open(endpoint.protocol(), ec); ec) return ioError("open " + where + ": " + ec.message());
  acc.set_option(net::socket_base::reuse_address(true), ec);
  if (acc.bind(endpoint, ec); ec) return ioError("bind " + where + ": " + ec.message());
  if (acc.listen(net::socket_base::max_listen_connections, ec); ec) {
    return ioError("listen " + where + ": " + ec.message());
  }
  bound_port_ = acc.local_endpoint().port();
  for (auto& w : impl_->workers) w->work.emplace(net::make_work_guard(w->ioc));
  impl_->accept();
  for (auto& w : impl_->workers) {
    w->thread = std::thread([w = w.get()] {
      pthread_setname_np(pthread_self(), "turbine-http");
      w->ioc.run();
    });
  }
  return Status::ok();
}

size_t HttpServer::openConnections() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->connections.size();
}

void HttpServer::shutdown(std::chrono::milliseconds deadline) {
  Impl& impl = *impl_;
  if (impl.shut_down.exchange(true)) return;
  if (!impl.workers[0]->thread.joinable()) return;  // never started
  auto until = std::chrono::steady_clock::now() + deadline;
  impl.draining.store(true);
  net::post(impl.workers[0]->ioc, [&impl] {
    beast::error_code ignored;
    impl.acceptor->close(ignored);
  });
  for (auto& c : impl.snapshot()) net::post(c->executor(), [c] { c->drain(); });
  while (openConnections() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& c : impl.snapshot()) net::post(c->executor(), [c] { c->forceClose(); });
  auto hard = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (openConnections() > 0 && std::chrono::steady_clock::now() < hard) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& w : impl.workers) {
    w->work.reset();
    w->ioc.stop();
  }
  for (auto& w : impl.workers) w->thread.join();
  for (auto& w : impl.workers) {
    std::lock_guard<std::mutex> lock(w->inbox_mu);
    w->accepting_posts = false;
  }
  // Run what is still queued (completions of the closed sockets, posted backend chunks) so the
  // handlers release their connections, which hold the server state alive.
  for (auto& w : impl.workers) {
    w->ioc.restart();
    w->ioc.poll();
  }
  for (auto& w : impl.workers) {
    std::vector<Worker::Posted> left;
    {
      std::lock_guard<std::mutex> lock(w->inbox_mu);
      left.swap(w->inbox);
    }
    left.clear();
    w->dirty.clear();
  }
}

}  // namespace turbine::frontend
