#include "runtime/etcd_client.h"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>

#include "common/http_fetch.h"
#include "common/http_url.h"

namespace turbine::runtime {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using nlohmann::json;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// etcd's int64 fields arrive as JSON strings ("123"), sometimes as numbers.
int64_t jsonInt(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
      return 0;
    }
  }
  return 0;
}

// etcd error JSON {"error", "message", "code"} -> Status with the gRPC code's meaning.
Status etcdError(const json& j) {
  const int64_t code = jsonInt(j, "code");
  std::string message = "etcd: " + j.value("message", j.value("error", std::string("error")));
  switch (code) {
    case 3: return invalidArgument(std::move(message));
    case 4: return Status(StatusCode::kDeadlineExceeded, std::move(message));
    case 5: return notFound(std::move(message));
    case 9: return failedPrecondition(std::move(message));
    case 11: return outOfRange(std::move(message));
    default: return unavailable(std::move(message));
  }
}

Result<json> parseJson(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return unavailable("etcd: " + what + ": answer is not a JSON object");
  return j;
}

// Complete top-level JSON objects at the front of `buf` are moved out, in order.
std::vector<std::string> takeObjects(std::string& buf) {
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  int depth = 0;
  bool in_string = false, escaped = false;
  for (; i < buf.size(); ++i) {
    const char c = buf[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' && depth++ == 0) start = i;
    else if (c == '}' && depth > 0 && --depth == 0) {
      out.push_back(buf.substr(start, i + 1 - start));
      buf.erase(0, i + 1);
      i = static_cast<size_t>(-1);  // rescan the rest from its beginning
    }
  }
  return out;
}

}  // namespace

std::string base64Encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (i < bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= uint8_t(bytes[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::string> base64Decode(const std::string& text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    const char* p = std::strchr(kAlphabet, c);
    if (c == '\0' || !p) return dataLoss("etcd: invalid base64 character in '" + text.substr(0, 40) + "'");
    acc = (acc << 6) | static_cast<uint32_t>(p - kAlphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string prefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

Result<EtcdClient> EtcdClient::create(const std::string& endpoint, int timeout_ms) {
  // The scheme is optional here ("127.0.0.1:2379"), the port is not.
  const bool scheme = endpoint.find("://") != std::string::npos;
  Result<HttpUrl> url = parseHttpUrl(scheme ? endpoint : "http://" + endpoint, "etcd endpoint");
  if (!url.isOk() || !url->has_port || !url->base_path.empty()) {
    return invalidArgument("etcd endpoint '" + endpoint + "': expected http://HOST:PORT");
  }
  return EtcdClient(url->host, url->port, timeout_ms);
}

Result<std::string> EtcdClient::post(const std::string& target, const std::string& body) const {
  TURBINE_ASSIGN_OR_RETURN(HttpResponse res, httpFetch(host_, port_, target, body, timeout_ms_));
  if (res.status != 200) {
    json j = json::parse(res.body, nullptr, false);
    if (j.is_object() && j.contains("code")) return etcdError(j);
    return unavailable("etcd at " + host_ + ":" + port_ + " (" + target + "): HTTP " + std::to_string(res.status));
  }
  return std::move(res.body);
}

Status EtcdClient::health() const {
  Result<std::string> r = post("/health", "");
  if (!r) return r.status();
  if (r->find("\"true\"") == std::string::npos) return unavailable("etcd: unhealthy: " + *r);
  return Status::ok();
}

Result<int64_t> EtcdClient::grantLease(int ttl_s) const {
  TURBINE_ASSIGN_OR_RETURN(std::string text, post("/v3/lease/grant", json{{"TTL", ttl_s}}.dump()));
  TURBINE_ASSIGN_OR_RETURN(json j, parseJson(text, "lease grant"));
  const int64_t id = jsonInt(j, "ID");
  if (id == 0) return unavailable("etcd: lease grant answered no ID");
  return id;
}

Result<int64_t> EtcdClient::keepAlive(int64_t lease) const {
  TURBINE_ASSIGN_OR_RETURN(std::string text, post("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump()));
  TURBINE_ASSIGN_OR_RETURN(json j, parseJson(text, "lease keepalive"));
  if (j.contains("error")) return etcdError(j["error"].is_object() ? j["error"] : j);
  const json& result = j.contains("result") ? j["result"] : j;
  const int64_t ttl = jsonInt(result, "TTL");
  if (ttl <= 0) return notFound("etcd: lease " + std::to_string(lease) + " expired");
  return ttl;
}

Status EtcdClient::revokeLease(int64_t lease) const {
  return post("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump()).status();
}

Status EtcdClient::put(const std::string& key, const std::string& value, int64_t lease) const {
  json body{{"key", base64Encode(key)}, {"value", base64Encode(value)}};
  if (lease != 0) body["lease"] = std::to_string(lease);
  return post("/v3/kv/put", body.dump()).status();
}

Status EtcdClient::deleteKey(const std::string& key) const {
  return post("/v3/kv/deleterange", json{{"key", base64Encode(key)}}.dump()).status();
}

Result<EtcdRange> EtcdClient::rangePrefix(const std::string& prefix) const {
  json body{{"key", base64Encode(prefix)}, {"range_end", base64Encode(prefixRangeEnd(prefix))}};
  TURBINE_ASSIGN_OR_RETURN(std::string text, post("/v3/kv/range", body.dump()));
  TURBINE_ASSIGN_OR_RETURN(json j, parseJson(text, "range"));
  EtcdRange range;
  if (j.contains("header")) range.revision = jsonInt(j["header"], "revision");
  if (!j.contains("kvs")) return range;
  if (!j["kvs"].is_array()) return unavailable("etcd: range: 'kvs' is not an array");
  for (const json& kv : j["kvs"]) {
    if (!kv.is_object()) continue;
    TURBINE_ASSIGN_OR_RETURN(std::string key, base64Decode(kv.value("key", std::string())));
    TURBINE_ASSIGN_OR_RETURN(std::string value, base64Decode(kv.value("value", std::string())));
    range.kvs.push_back({std::move(key), std::move(value), jsonInt(kv, "mod_revision")});
  }
  return range;
}

Status EtcdWatchStream::run(const std::string& prefix, int64_t start_revision, const OnEvents& on_events) {
  const std::string where = "etcd watch at " + client_.host() + ":" + client_.port();
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto addresses = resolver.resolve(client_.host(), client_.port(), ec);
  if (ec) return unavailable(where + ": " + ec.message());
  stream.expires_after(std::chrono::milliseconds(client_.timeoutMs()));
  stream.connect(addresses, ec);
  if (ec) return unavailable(where + ": " + ec.message());
  stream.expires_never();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) return Status::ok();
    fd_ = stream.socket().native_handle();
  }
  json create{{"key", base64Encode(prefix)}, {"range_end", base64Encode(prefixRangeEnd(prefix))}};
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  http::request<http::string_body> req{http::verb::post, "/v3/watch", 11};
  req.set(http::field::host, client_.host());
  req.set(http::field::content_type, "application/json");
  req.body() = json{{"create_request", create}}.dump();
  req.prepare_payload();
  http::write(stream, req, ec);
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  if (!ec) http::read_header(stream, buf, parser, ec);
  Status result = Status::ok();
  std::string pending;
  char chunk[16384];
  while (!ec && !parser.is_done() && result.isOk()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    http::read_some(stream, buf, parser, ec);  // returns with whatever part of the body came
    if (ec == http::error::need_buffer) ec = {};
    pending.append(chunk, sizeof(chunk) - parser.get().body().size);
    for (const std::string& object : takeObjects(pending)) {
      result = consume(object, on_events);
      if (!result.isOk()) break;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fd_ = -1;
  }
  if (cancelled_) return Status::ok();
  if (!result.isOk()) return result;
  return unavailable(where + ": stream ended" + (ec ? ": " + ec.message() : std::string()));
}

Status EtcdWatchStream::consume(const std::string& text, const OnEvents& on_events) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return unavailable("etcd watch: malformed JSON in the stream");
  if (j.contains("error")) return etcdError(j["error"].is_object() ? j["error"] : j);
  const json& result = j.contains("result") ? j["result"] : j;
  if (result.value("canceled", false)) {
    if (jsonInt(result, "compact_revision") > 0) return failedPrecondition("etcd watch: revision compacted");
    return unavailable("etcd watch: cancelled by etcd: " + result.value("cancel_reason", std::string()));
  }
  if (!result.contains("events") || !result["events"].is_array()) return Status::ok();
  std::vector<EtcdWatchEvent> events;
  for (const json& e : result["events"]) {
    if (!e.is_object() || !e.contains("kv")) continue;
    const json& kv = e["kv"];
    EtcdWatchEvent ev;
    ev.type = e.value("type", std::string("PUT")) == "DELETE" ? EtcdWatchEvent::Type::kDelete : EtcdWatchEvent::Type::kPut;
    TURBINE_ASSIGN_OR_RETURN(ev.key, base64Decode(kv.value("key", std::string())));
    TURBINE_ASSIGN_OR_RETURN(ev.value, base64Decode(kv.value("value", std::string())));
    ev.mod_revision = jsonInt(kv, "mod_revision");
    events.push_back(std::move(ev));
  }
  if (!events.empty()) on_events(events);
  return Status::ok();
}

void EtcdWatchStream::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

}  // namespace turbine::runtime
