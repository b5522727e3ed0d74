#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange

#include "bench/stub_server.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_set>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace turbine::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr int32_t kCacheBlock = 16;

auto redirect(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

std::vector<int32_t> fakeTokenize(const std::string& text) {
  std::vector<int32_t> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(StubServer::wordId(w));
  return out;
}

std::string chunked(const std::string& data) {
  char len[32];
  std::snprintf(len, sizeof len, "%zx\r\n", data.size());
  return len + data + "\r\n";
}

}  // namespace

struct StubServer::Impl {
  StubServerOptions o;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  std::atomic<int64_t> generate{0}, tokenize{0}, failed{0}, tokens{0}, conns{0}, streams{0},
      max_streams{0}, lag_sum_us{0}, lag_max_us{0};
  mutable std::mutex mu;  // guards seen_blocks and prompts
  std::unordered_set<uint64_t> seen_blocks;
  std::vector<std::vector<int32_t>> prompts;
  bool stopped = false;

  // Leading 16-token blocks already seen, in tokens; records this prompt's blocks.
  int32_t cachedTokens(const std::vector<int32_t>& ids) {
    std::lock_guard<std::mutex> lock(mu);
    if (o.record_prompts) prompts.push_back(ids);
    uint64_t h = 1469598103934665603ULL;
    int32_t cached = 0;
    bool prefix = true;
    for (size_t b = 0; b + kCacheBlock <= ids.size(); b += kCacheBlock) {
      for (size_t i = b; i < b + kCacheBlock; ++i) h = (h ^ static_cast<uint32_t>(ids[i])) * 1099511628211ULL;
      bool hit = !seen_blocks.insert(h).second;
      if (hit && prefix) cached += kCacheBlock;
      prefix = prefix && hit;
    }
    return cached;
  }

  asio::awaitable<void> acceptLoop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket s = co_await acceptor.async_accept(redirect(ec));
      if (ec) co_return;
      ++conns;
      asio::co_spawn(acceptor.get_executor(), session(std::move(s)), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket s) {
    beast::error_code ec;
    s.set_option(tcp::no_delay(true), ec);
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      co_await http::async_read(s, buf, req, redirect(ec));
      if (ec) break;
      const std::string target(req.target());
      bool ok = true;
      if (target == "/tokenize") {
        ok = co_await handleTokenize(s, req);
      } else if (target == "/v1/completions" || target == "/v1/chat/completions") {
        ok = co_await handleGenerate(s, req, target != "/v1/completions");
      } else {
        ok = co_await reply(s, http::status::not_found, R"({"error":{"message":"not found"}})");
      }
      if (!ok || !req.keep_alive()) break;
    }
    s.shutdown(tcp::socket::shutdown_both, ec);
  }

  asio::awaitable<bool> reply(tcp::socket& s, http::status status, std::string body) {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(true);
    res.body() = std::move(body);
    res.prepare_payload();
    beast::error_code ec;
    co_await http::async_write(s, res, redirect(ec));
    co_return !ec;
  }

  asio::awaitable<bool> handleTokenize(tcp::socket& s, const http::request<http::string_body>& req) {
    ++tokenize;
    json j = json::parse(req.body(), nullptr, false);
    if (j.is_discarded() || !j.contains("prompt") || !j["prompt"].is_string()) {
      co_return co_await reply(s, http::status::bad_request, R"({"error":{"message":"bad tokenize body"}})");
    }
    std::vector<int32_t> ids = fakeTokenize(j["prompt"].get<std::string>());
    json out = {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", 1 << 20}};
    co_return co_await reply(s, http::status::ok, out.dump());
  }

  static std::vector<int32_t> promptIds(const json& j, bool chat) {
    std::vector<int32_t> ids;
    if (chat) {
      for (const auto& m : j.value("messages", json::array())) {
        auto t = fakeTokenize(m.value("content", ""));
        ids.push_back(1);  // fake template: 3 tokens per message
        ids.push_back(m.value("role", "") == "user" ? 2 : 3);
        ids.insert(ids.end(), t.begin(), t.end());
        ids.push_back(4);
      }
    } else if (j.contains("prompt") && j["prompt"].is_array()) {
      for (const auto& v : j["prompt"]) ids.push_back(v.is_number_integer() ? v.get<int32_t>() : 0);
    } else if (j.contains("prompt") && j["prompt"].is_string()) {
      ids = fakeTokenize(j["prompt"].get<std::string>());
    }
    return ids;
  }

  static std::string tokenEvent(const std::string& id, bool chat, int32_t k, bool last) {
    std::string text = " t" + std::to_string(k);
    json c = chat ? json{{"index", 0}, {"delta", {{"content", text}}}}
                  : json{{"index", 0}, {"text", text}};
    c["finish_reason"] = last ? json("length") : json(nullptr);
    json ev = {{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
               {"created", 0}, {"model", "stub"}, {"choices", json::array({c})}};
    return "data: " + ev.dump() + "\n\n";
  }

  asio::awaitable<bool> handleGenerate(tcp::socket& s, const http::request<http::string_body>& req,
                                       bool chat) {
    const Clock::time_point t0 = Clock::now();
    const int64_t n = ++generate;
    json j = json::parse(req.body(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      co_return co_await reply(s, http::status::bad_request, R"({"error":{"message":"invalid JSON body"}})");
    }
    if (o.fail_every > 0 && n % o.fail_every == 0) {
      ++failed;
      co_return co_await reply(s, http::status::internal_server_error,
                               R"({"error":{"message":"stub: injected failure","type":"server_error","code":500}})");
    }
    const int32_t max_tokens = j.value("max_tokens", 16);
    std::vector<int32_t> ids = promptIds(j, chat);
    const int32_t cached = cachedTokens(ids);
    int64_t now_streams = ++streams;
    for (int64_t m = max_streams.load(); now_streams > m && !max_streams.compare_exchange_weak(m, now_streams);) {
    }
    bool ok = co_await stream(s, chat, n, max_tokens, static_cast<int32_t>(ids.size()), cached, t0);
    --streams;
    co_return ok;
  }

  asio::awaitable<bool> stream(tcp::socket& s, bool chat, int64_t n, int32_t max_tokens,
                               int32_t prompt_tokens, int32_t cached, Clock::time_point t0) {
    beast::error_code ec;
    const std::string id = "cmpl-" + std::to_string(n);
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    if (chat) {
      head += chunked(R"(data: {"id":")" + id +
                      R"(","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})" +
                      "\n\n");
    }
    co_await asio::async_write(s, asio::buffer(head), redirect(ec));
    asio::steady_timer timer(s.get_executor());
    for (int32_t k = 0; k < max_tokens && !ec; ++k) {
      const Clock::time_point due =
          t0 + std::chrono::duration_cast<Clock::duration>(
                   std::chrono::duration<double, std::milli>(o.ttft_ms + k * o.itl_ms));
      timer.expires_at(due);
      co_await timer.async_wait(redirect(ec));
      if (ec) break;
      const int64_t lag = std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - due).count());
      lag_sum_us += lag;
      for (int64_t m = lag_max_us.load(); lag > m && !lag_max_us.compare_exchange_weak(m, lag);) {
      }
      std::string ev = chunked(tokenEvent(id, chat, k, k + 1 == max_tokens));
      co_await asio::async_write(s, asio::buffer(ev), redirect(ec));
      ++tokens;
    }
    if (ec) co_return false;
    json usage = {{"prompt_tokens", prompt_tokens}, {"completion_tokens", max_tokens},
                  {"total_tokens", prompt_tokens + max_tokens},
                  {"prompt_tokens_details", {{"cached_tokens", cached}}}};
    json last = {{"id", id}, {"choices", json::array()}, {"usage", usage}};
    std::string tail = chunked("data: " + last.dump() + "\n\n") + chunked("data: [DONE]\n\n") + "0\r\n\r\n";
    co_await asio::async_write(s, asio::buffer(tail), redirect(ec));
    co_return !ec;
  }
};

StubServer::StubServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StubServer::~StubServer() { stop(); }

Result<std::unique_ptr<StubServer>> StubServer::start(const StubServerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->o = options;
  beast::error_code ec;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return unavailable("stub server: cannot listen on 127.0.0.1: " + ec.message());
  asio::co_spawn(impl->io, impl->acceptLoop(), asio::detached);
  Impl* p = impl.get();
  for (int32_t i = 0; i < std::max(1, options.threads); ++i) {
    impl->threads.emplace_back([p] { p->io.run(); });
  }
  return std::unique_ptr<StubServer>(new StubServer(std::move(impl)));
}

uint16_t StubServer::port() const {
  beast::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

StubStats StubServer::stats() const {
  StubStats s;
  s.generate_requests = impl_->generate;
  s.tokenize_requests = impl_->tokenize;
  s.failed_on_purpose = impl_->failed;
  s.tokens_sent = impl_->tokens;
  s.connections = impl_->conns;
  s.max_concurrent_streams = impl_->max_streams;
  const int64_t n = impl_->tokens.load();
  s.send_lag_mean_ms = n > 0 ? static_cast<double>(impl_->lag_sum_us.load()) / 1000.0 / static_cast<double>(n) : 0.0;
  s.send_lag_max_ms = static_cast<double>(impl_->lag_max_us.load()) / 1000.0;
  return s;
}

std::vector<std::vector<int32_t>> StubServer::prompts() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->prompts;
}

void StubServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->io.stop();
  for (auto& t : impl_->threads) t.join();
}

int32_t StubServer::wordId(const std::string& word) {
  uint32_t h = 2166136261u;
  for (unsigned char c : word) h = (h ^ c) * 16777619u;
  return static_cast<int32_t>(100 + h % 50000);
}

}  // namespace turbine::bench
