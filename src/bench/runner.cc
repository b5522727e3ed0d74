#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include "bench/runner.h"

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_set>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "bench/sse_parser.h"

namespace turbine::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 8192;
constexpr size_t kMaxErrorBody = 2048;

double msBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

auto redirect(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

// "500 Internal Server Error: <error.message>" from an error response body.
std::string errorText(int status, const std::string& body) {
  std::string msg = body.substr(0, 200);
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const auto& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) {
      msg = e["message"].get<std::string>();
    } else if (e.is_string()) {
      msg = e.get<std::string>();
    }
  }
  for (char& c : msg) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return "HTTP " + std::to_string(status) + ": " + msg;
}

// One pooled HTTP/1.1 connection. Timeouts are enforced by the runner's watchdog, which closes
// the socket of a connection past its deadline (cheaper than a timer per read at 1,000 streams).
struct Conn {
  explicit Conn(asio::io_context& io) : sock(io) {}
  tcp::socket sock;
  beast::flat_buffer buf;
  Clock::time_point deadline = Clock::time_point::max();
  bool timed_out = false;
};

class Runner {
 public:
  Runner(const RunnerOptions& o, Workload& w, const PromptRenderer& r, Url url)
      : o_(o), workload_(w), renderer_(r), url_(std::move(url)), wake_(io_), tick_(io_), watchdog_(io_), probe_(io_) {
    target_ = endpointPath(url_, o_.endpoint);
    host_header_ = url_.host + ":" + url_.port;
    keep_text_ = workload_.needsOutputText();
  }

  Result<RunOutput> run() {
    auto rethrow = [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    };
    try {
      asio::co_spawn(io_, main(), rethrow);
      const double cpu0 = threadCpuSeconds();
      io_.run();
      out_.loop_cpu_s = threadCpuSeconds() - cpu0;
    } catch (const std::exception& e) {
      return internalError(std::string("bench event loop: ") + e.what());
    }
    if (!fatal_.isOk()) return fatal_;
    return std::move(out_);
  }

 private:
  asio::awaitable<void> main() {
    asio::co_spawn(io_, watchdog(), asio::detached);
    co_await preflight();
    if (fatal_.isOk()) {
      start_ = Clock::now();
      if (o_.progress) asio::co_spawn(io_, progressLoop(), asio::detached);
      asio::co_spawn(io_, lagProbe(), asio::detached);
      co_await dispatch();
      out_.duration_s = msBetween(start_, Clock::now()) / 1000.0;
      if (o_.progress) o_.progress(progress());
    }
    finished_all_ = true;
    tick_.cancel();
    watchdog_.cancel();
    probe_.cancel();
    summarizeLag();
    for (auto& c : idle_) {
      beast::error_code ignored;
      c->sock.shutdown(tcp::socket::shutdown_both, ignored);
    }
    idle_.clear();
  }

  // Resolves the host and opens the first connection, so an unreachable server fails the run
  // with one clear message instead of N failed requests.
  asio::awaitable<void> preflight() {
    beast::error_code ec;
    tcp::resolver resolver(io_);
    endpoints_ = co_await resolver.async_resolve(url_.host, url_.port, redirect(ec));
    if (ec) {
      fatal_ = unavailable("cannot resolve " + url_.host + ": " + ec.message());
      co_return;
    }
    auto c = co_await connect(ec);
    if (ec) {
      fatal_ = unavailable("cannot connect to http://" + host_header_ + ": " + ec.message());
      co_return;
    }
    idle_.push_back(std::move(c));
  }

  asio::awaitable<std::unique_ptr<Conn>> connect(beast::error_code& ec) {
    auto c = std::make_unique<Conn>(io_);
    arm(*c, o_.connect_timeout_s);
    co_await asio::async_connect(c->sock, endpoints_, redirect(ec));
    disarm(*c);
    if (c->timed_out) ec = beast::error::timeout;
    if (!ec) {
      beast::error_code ignored;
      c->sock.set_option(tcp::no_delay(true), ignored);
      ++out_.connections_opened;
    }
    co_return c;
  }

  asio::awaitable<void> lagProbe() {
    constexpr auto kPeriod = std::chrono::milliseconds(5);
    while (!finished_all_) {
      const Clock::time_point due = Clock::now() + kPeriod;
      probe_.expires_at(due);
      beast::error_code ec;
      co_await probe_.async_wait(redirect(ec));
      if (ec) break;
      lags_ms_.push_back(msBetween(due, Clock::now()));
    }
  }
  void summarizeLag() {
    if (lags_ms_.empty()) return;
    std::sort(lags_ms_.begin(), lags_ms_.end());
    const size_t n = lags_ms_.size();
    out_.loop_lag_p50_ms = lags_ms_[(n - 1) / 2];
    out_.loop_lag_p99_ms = lags_ms_[std::min(n - 1, static_cast<size_t>(0.99 * static_cast<double>(n)))];
    out_.loop_lag_max_ms = lags_ms_.back();
  }

  static Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }
  void arm(Conn& c, double timeout_s) {
    c.deadline = Clock::now() + seconds(timeout_s);
    c.timed_out = false;
    armed_.insert(&c);
  }
  void disarm(Conn& c) {
    c.deadline = Clock::time_point::max();
    armed_.erase(&c);
  }

  // Closes connections past their deadline; their pending operations then fail.
  asio::awaitable<void> watchdog() {
    const double period = std::clamp(std::min(o_.timeout_s, o_.connect_timeout_s) / 10.0, 0.01, 1.0);
    while (!finished_all_) {
      const Clock::time_point now = Clock::now();
      for (Conn* c : armed_) {
        if (c->deadline <= now && !c->timed_out) {
          c->timed_out = true;
          beast::error_code ignored;
          c->sock.close(ignored);
        }
      }
      watchdog_.expires_after(seconds(period));
      beast::error_code ec;
      co_await watchdog_.async_wait(redirect(ec));
    }
  }

  Clock::time_point durationEnd() const {
    if (o_.duration_s <= 0) return Clock::time_point::max();
    return start_ + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(o_.duration_s));
  }

  asio::awaitable<void> waitUntil(Clock::time_point t) {
    wake_.expires_at(t);
    beast::error_code ec;
    co_await wake_.async_wait(redirect(ec));
  }
  void wake() { wake_.cancel(); }

  asio::awaitable<void> dispatch() {
    const Clock::time_point end = durationEnd();
    std::optional<RequestSpec> pending;
    for (;;) {
      if (Clock::now() >= end) break;
      if (!pending) pending = workload_.next();
      if (!pending) {
        if (workload_.done() || in_flight_ == 0) break;
        co_await waitUntil(end);
        continue;
      }
      if (o_.max_concurrency > 0 && in_flight_ >= o_.max_concurrency) {
        co_await waitUntil(end);
        continue;
      }
      if (pending->arrival_s > 0) {
        auto at = start_ + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(pending->arrival_s));
        if (at > Clock::now()) {
          co_await waitUntil(std::min(at, end));
          continue;
        }
      }
      ++in_flight_;
      ++started_;
      out_.max_in_flight = std::max(out_.max_in_flight, in_flight_);
      asio::co_spawn(io_, runRequest(std::move(*pending)), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
      pending.reset();
    }
    while (in_flight_ > 0) co_await waitUntil(Clock::time_point::max());
  }

  RunProgress progress() const {
    RunProgress p;
    p.started = started_;
    p.finished = static_cast<int64_t>(out_.results.size());
    p.failed = failed_;
    p.total = workload_.total();
    p.in_flight = in_flight_;
    p.output_tokens = output_tokens_;
    p.elapsed_s = msBetween(start_, Clock::now()) / 1000.0;
    return p;
  }

  asio::awaitable<void> progressLoop() {
    while (!finished_all_) {
      o_.progress(progress());
      tick_.expires_after(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(o_.progress_interval_s)));
      beast::error_code ec;
      co_await tick_.async_wait(redirect(ec));
    }
  }

  http::request<http::string_body> makeRequest(const RequestSpec& spec) const {
    http::request<http::string_body> req{http::verb::post, target_, 11};
    req.set(http::field::host, host_header_);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    req.set(http::field::user_agent, "turbine-bench");
    if (!o_.api_key.empty()) req.set(http::field::authorization, "Bearer " + o_.api_key);
    req.keep_alive(true);
    req.body() = renderer_.body(spec);
    req.prepare_payload();
    return req;
  }

  static void fail(RequestResult& r, std::string kind, std::string message) {
    if (!r.ok()) return;  // keep the first failure
    r.error_kind = std::move(kind);
    r.error = std::move(message);
  }
  static std::string ioKind(const Conn& c, const beast::error_code& ec) {
    return c.timed_out || ec == beast::error::timeout ? "timeout" : "io";
  }
  static std::string ioMessage(const Conn& c, const beast::error_code& ec) {
    return c.timed_out ? std::string("timed out") : ec.message();
  }

  asio::awaitable<void> runRequest(RequestSpec spec) {
    RequestResult r;
    r.id = spec.id;
    r.user = spec.user;
    r.turn = spec.turn;
    r.input_tokens_requested = spec.input_tokens;
    r.output_tokens_requested = spec.output_tokens;
    http::request<http::string_body> req = makeRequest(spec);
    const Clock::time_point t0 = Clock::now();
    r.start_s = msBetween(start_, t0) / 1000.0;
    for (int attempt = 0; attempt < 2; ++attempt) {
      beast::error_code ec;
      bool reused = attempt == 0 && !idle_.empty();
      std::unique_ptr<Conn> c;
      if (reused) {
        c = std::move(idle_.back());
        idle_.pop_back();
      } else {
        c = co_await connect(ec);
        if (ec) {
          fail(r, "connect", "connect to " + host_header_ + ": " + ec.message());
          break;
        }
      }
      arm(*c, o_.timeout_s);
      http::response_parser<http::buffer_body> p;
      p.body_limit(std::numeric_limits<std::uint64_t>::max());
      co_await http::async_write(c->sock, req, redirect(ec));
      if (!ec) co_await http::async_read_header(c->sock, c->buf, p, redirect(ec));
      if (ec && reused && attempt == 0 && !c->timed_out) {  // a stale keep-alive connection
        disarm(*c);
        continue;
      }
      if (ec) {
        fail(r, ioKind(*c, ec), "no response: " + ioMessage(*c, ec));
        disarm(*c);
        break;
      }
      r.http_status = static_cast<int>(p.get().result_int());
      bool clean = co_await readBody(*c, p, t0, r);
      disarm(*c);
      if (clean && p.get().keep_alive()) {  // an error answer read whole leaves it reusable
        idle_.push_back(std::move(c));
      }
      break;
    }
    finish(spec, std::move(r));
  }

  // Reads the body to its end, timing every content event. Returns whether the connection is
  // still at a message boundary (reusable).
  asio::awaitable<bool> readBody(Conn& c, http::response_parser<http::buffer_body>& p,
                                 Clock::time_point t0, RequestResult& r) {
    SseParser sse;
    std::string err_body;
    std::vector<char> chunk(kReadChunk);
    Clock::time_point last{};
    bool done = false;
    while (!p.is_done()) {
      p.get().body().data = chunk.data();
      p.get().body().size = chunk.size();
      beast::error_code ec;
      co_await http::async_read_some(c.sock, c.buf, p, redirect(ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        fail(r, ioKind(c, ec),
             "stream cut after " + std::to_string(r.chunks) + " chunks: " + ioMessage(c, ec));
        co_return false;
      }
      const size_t n = chunk.size() - p.get().body().size;
      if (n == 0) continue;
      const Clock::time_point t = Clock::now();
      if (r.http_status != 200) {
        err_body.append(chunk.data(), std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, err_body.size())));
        continue;
      }
      for (SseEvent& e : sse.feed(std::string_view(chunk.data(), n))) {
        if (e.has_content) {
          if (r.chunks == 0) {
            r.ttft_ms = msBetween(t0, t);
          } else {
            r.itl_ms.push_back(msBetween(last, t));
          }
          last = t;
          ++r.chunks;
          if (keep_text_) r.output_text += e.text;
        }
        if (e.prompt_tokens) r.prompt_tokens = *e.prompt_tokens;
        if (e.completion_tokens) r.completion_tokens = *e.completion_tokens;
        if (e.cached_tokens) r.cached_tokens = *e.cached_tokens;
        if (!e.error.empty()) fail(r, "stream", "error in stream: " + e.error);
        if (e.done && !done) {
          done = true;
          r.e2e_ms = msBetween(t0, t);
        }
      }
    }
    if (r.http_status != 200) {
      fail(r, "http_" + std::to_string(r.http_status), errorText(r.http_status, err_body));
    } else {
      if (!done) r.e2e_ms = msBetween(t0, Clock::now());
      if (r.chunks == 0 && r.ok()) fail(r, "stream", "stream ended without any token");
    }
    co_return true;
  }

  void finish(const RequestSpec& spec, RequestResult r) {
    --in_flight_;
    if (!r.ok()) ++failed_;
    if (r.ok()) output_tokens_ += r.outputTokens();
    workload_.onComplete(spec, r);
    if (!keep_text_) r.output_text.clear();
    out_.results.push_back(std::move(r));
    wake();
  }

  const RunnerOptions& o_;
  Workload& workload_;
  const PromptRenderer& renderer_;
  Url url_;
  std::string target_;
  std::string host_header_;
  bool keep_text_ = false;

  asio::io_context io_{1};
  asio::steady_timer wake_;
  asio::steady_timer tick_;
  asio::steady_timer watchdog_;
  asio::steady_timer probe_;
  std::vector<double> lags_ms_;
  std::unordered_set<Conn*> armed_;  // connections with a deadline
  tcp::resolver::results_type endpoints_;
  std::vector<std::unique_ptr<Conn>> idle_;
  Clock::time_point start_ = Clock::now();
  Status fatal_;
  RunOutput out_;
  int32_t in_flight_ = 0;
  int64_t started_ = 0;
  int64_t failed_ = 0;
  int64_t output_tokens_ = 0;
  bool finished_all_ = false;
};

}  // namespace

Result<Url> parseUrl(const std::string& url) { return parseHttpUrl(url, "--url"); }

std::string endpointPath(const Url& url, Endpoint endpoint) {
  return url.base_path + (endpoint == Endpoint::kChat ? "/v1/chat/completions" : "/v1/completions");
}

void raiseOpenFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

Result<RunOutput> runBench(const RunnerOptions& options, Workload& workload,
                           const PromptRenderer& renderer) {
  TURBINE_ASSIGN_OR_RETURN(Url url, parseUrl(options.url));
  raiseOpenFileLimit();
  Runner runner(options, workload, renderer, std::move(url));
  return runner.run();
}

}  // namespace turbine::bench
