// Base URLs of HTTP servers: OpenAI-compatible ones, as the load generator (`turbine bench --url`)
// and the upstream worker (`turbine worker --engine upstream --upstream`) take them, and etcd's
// JSON gateway (`--etcd`).
#pragma once

#include <string>

#include "common/status.h"

namespace turbine {

struct HttpUrl {
  std::string host;
  std::string port = "80";
  bool has_port = false;  // the URL named the port (else 80)
  std::string base_path;  // without a trailing '/' and without a trailing "/v1"
};

// "http://host[:port][/prefix]" (IPv6 hosts in brackets); https is not supported. Errors are
// InvalidArgument, naming `what` (the option the URL came from).
Result<HttpUrl> parseHttpUrl(const std::string& url, const std::string& what);

}  // namespace turbine
