#include "common/http_url.h"

namespace turbine {

Result<HttpUrl> parseHttpUrl(const std::string& url, const std::string& what) {
  const std::string scheme = "http://";
  if (url.rfind("https://", 0) == 0) return invalidArgument(what + ": https is not supported: " + url);
  if (url.rfind(scheme, 0) != 0) return invalidArgument(what + " must start with http://: " + url);
  std::string rest = url.substr(scheme.size());
  HttpUrl out;
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  out.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  if (out.base_path.size() >= 3 && out.base_path.compare(out.base_path.size() - 3, 3, "/v1") == 0) {
    out.base_path.resize(out.base_path.size() - 3);
  }
  // HOST[:PORT], an IPv6 host in brackets: [::1][:PORT].
  const size_t close = !hostport.empty() && hostport.front() == '[' ? hostport.find(']') : std::string::npos;
  const size_t colon = hostport.find(':', close == std::string::npos ? 0 : close);
  if (colon != std::string::npos) {
    out.host = hostport.substr(0, colon);
    out.port = hostport.substr(colon + 1);
    out.has_port = true;
  } else {
    out.host = hostport;
  }
  if (close != std::string::npos && out.host.size() >= 2 && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  if (out.host.empty() || out.port.empty() ||
      out.port.find_first_not_of("0123456789") != std::string::npos) {
    return invalidArgument(what + ": expected http://HOST[:PORT][/PATH], got " + url);
  }
  return out;
}

}  // namespace turbine
