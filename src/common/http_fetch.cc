#include "common/http_fetch.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>

namespace turbine {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

Result<HttpResponse> httpFetch(const std::string& host, const std::string& port, const std::string& target,
                               const std::string& body, int timeout_ms, size_t body_limit) {
  const std::string where = host + ":" + port + " (" + target + ")";
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  net::ip::tcp::resolver resolver(ioc);
  auto addresses = resolver.resolve(host, port, ec);
  if (ec) return unavailable(where + ": " + ec.message());
  stream.expires_after(std::chrono::milliseconds(timeout_ms));
  stream.connect(addresses, ec);
  if (ec) return unavailable(where + ": " + ec.message());
  http::request<http::string_body> req{body.empty() ? http::verb::get : http::verb::post, target, 11};
  req.set(http::field::host, host);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.keep_alive(false);
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req, ec);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  if (!ec) http::read(stream, buf, parser, ec);
  if (ec) return unavailable(where + ": " + ec.message());
  stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
  return HttpResponse{parser.get().result_int(), std::move(parser.get().body())};
}

}  // namespace turbine
