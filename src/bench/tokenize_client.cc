#include "bench/tokenize_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "bench/runner.h"

namespace turbine::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct TokenizeClient::Impl {
  std::string url, model, api_key;
  double timeout_s = 30.0;
  asio::io_context io;
  std::unique_ptr<beast::tcp_stream> stream;
  beast::flat_buffer buf;
  Url parsed;

  Status connect() {
    TURBINE_ASSIGN_OR_RETURN(parsed, parseUrl(url));
    beast::error_code ec;
    tcp::resolver resolver(io);
    auto eps = resolver.resolve(parsed.host, parsed.port, ec);
    if (ec) return unavailable("cannot resolve " + parsed.host + ": " + ec.message());
    stream = std::make_unique<beast::tcp_stream>(io);
    stream->expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
    stream->connect(eps, ec);
    if (ec) {
      stream.reset();
      return unavailable("cannot connect to " + url + ": " + ec.message());
    }
    return Status::ok();
  }

  // One POST; on an I/O error the connection is dropped.
  Result<http::response<http::string_body>> post(const std::string& body) {
    if (!stream) TURBINE_RETURN_IF_ERROR(connect());
    http::request<http::string_body> req{http::verb::post, parsed.base_path + "/tokenize", 11};
    req.set(http::field::host, parsed.host + ":" + parsed.port);
    req.set(http::field::content_type, "application/json");
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    http::response<http::string_body> res;
    stream->expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
    http::write(*stream, req, ec);
    if (!ec) http::read(*stream, buf, res, ec);
    if (ec) {
      stream.reset();
      buf.clear();
      return unavailable("POST " + url + "/tokenize: " + ec.message());
    }
    if (!res.keep_alive()) stream.reset();
    return res;
  }
};

TokenizeClient::TokenizeClient(std::string url, std::string model, std::string api_key,
                               double timeout_s)
    : impl_(std::make_unique<Impl>()) {
  impl_->url = std::move(url);
  impl_->model = std::move(model);
  impl_->api_key = std::move(api_key);
  impl_->timeout_s = timeout_s;
}
TokenizeClient::~TokenizeClient() = default;
TokenizeClient::TokenizeClient(TokenizeClient&&) noexcept = default;

Result<std::vector<int32_t>> TokenizeClient::tokenize(const std::string& text) {
  nlohmann::json body = {{"model", impl_->model}, {"prompt", text}};
  Result<http::response<http::string_body>> res = impl_->post(body.dump());
  if (!res.isOk()) {
    // One retry on a fresh connection (the server may have closed an idle keep-alive one).
    res = impl_->post(body.dump());
    if (!res.isOk()) return res.status();
  }
  const int status = static_cast<int>(res->result_int());
  if (status == 404 || status == 405) return notFound("server has no /tokenize endpoint");
  if (status != 200) {
    return unavailable("/tokenize answered HTTP " + std::to_string(status) + ": " +
                       res->body().substr(0, 200));
  }
  nlohmann::json j = nlohmann::json::parse(res->body(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) {
    return invalidArgument("/tokenize: response has no 'tokens' array");
  }
  std::vector<int32_t> ids;
  for (const auto& t : j["tokens"]) {
    if (!t.is_number_integer()) return invalidArgument("/tokenize: non-integer token id");
    ids.push_back(t.get<int32_t>());
  }
  return ids;
}

Result<WordCalibration> calibrateWords(TokenizeClient& client,
                                       const std::vector<std::string>& candidates) {
  WordCalibration out;
  TURBINE_ASSIGN_OR_RETURN(std::vector<int32_t> base, client.tokenize("a"));
  // "a" is one token (plus specials) in every BPE vocabulary we know of.
  out.special_tokens = static_cast<int32_t>(base.size()) - 1;
  for (const std::string& w : candidates) {
    TURBINE_ASSIGN_OR_RETURN(std::vector<int32_t> ids, client.tokenize("a " + w + " " + w));
    if (ids.size() != base.size() + 2 || ids[ids.size() - 1] != ids[ids.size() - 2]) continue;
    out.words.push_back(w);
    out.ids.push_back(ids.back());
  }
  if (out.words.size() < 16) {
    return failedPrecondition("/tokenize: fewer than 16 of " + std::to_string(candidates.size()) +
                              " probe words are single tokens; cannot build exact prompts");
  }
  return out;
}

}  // namespace turbine::bench
