// Blocking HTTP/1.1 client for the frontend tests (Boost.Beast over loopback), plus helpers to
// start an OpenAiServer over a FakeBackend on 127.0.0.1 with an ephemeral port.
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/fake_backend.h"
#include "frontend/openai_server.h"

namespace turbine::frontend::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// One keep-alive connection.
class TestClient {
 public:
  explicit TestClient(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }

  ClientResponse request(const std::string& method, const std::string& target,
                         const std::string& body = "",
                         const std::map<std::string, std::string>& headers = {}) {
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == "POST") {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
    }
    http::write(socket_, req);
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    beast::error_code ec;
    http::read(socket_, buffer_, parser, ec);
    ClientResponse out;
    if (ec) {
      out.status = -1;
      out.body = ec.message();
      return out;
    }
    auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(f.value());
    }
    out.body = res.body();
    return out;
  }

  tcp::socket& socket() { return socket_; }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

inline ClientResponse post(uint16_t port, const std::string& target, const std::string& body,
                           const std::map<std::string, std::string>& headers = {}) {
  TestClient c(port);
  return c.request("POST", target, body, headers);
}

inline ClientResponse get(uint16_t port, const std::string& target) {
  TestClient c(port);
  return c.request("GET", target);
}

// Splits an SSE body into the JSON payloads of its "data: " events ("[DONE]" kept as is).
inline std::vector<std::string> sseEvents(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    std::string ev = body.substr(pos, end - pos);
    if (ev.rfind("data: ", 0) == 0) out.push_back(ev.substr(6));
    pos = end + 2;
  }
  return out;
}

// Runs a shell command and returns its stdout.
inline std::string runCommand(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

struct ServerFixture {
  explicit ServerFixture(FakeBackendOptions backend_options = {}, OpenAiServerOptions options = {}) {
    backend = std::make_shared<FakeBackend>(backend_options);
    options.http.port = 0;
    options.http.host = "127.0.0.1";
    options.shutdown_grace = std::chrono::milliseconds(2000);
    server = std::make_unique<OpenAiServer>(options, backend);
    Status st = server->start();
    EXPECT_TRUE(st.isOk()) << st.toString();
    port = server->port();
  }
  std::shared_ptr<FakeBackend> backend;
  std::unique_ptr<OpenAiServer> server;
  uint16_t port = 0;
};

// A fake backend that emits a token every 200 us, and a chat request of 5 tokens against it.
inline FakeBackendOptions fastBackend() {
  FakeBackendOptions o;
  o.token_interval = std::chrono::microseconds(200);
  return o;
}
inline const std::string kChatHi = R"({"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":5)";
inline constexpr int kChatHiPromptTokens = 24;  // "<|user|>hi\n<|assistant|>"

}  // namespace turbine::frontend::testing
