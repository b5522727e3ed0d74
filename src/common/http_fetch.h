// One HTTP/1.1 exchange on a fresh loopback-or-LAN connection, blocking, with a deadline: for the
// small control-plane calls (etcd's JSON gateway, a frontend's /metrics) where a connection pool
// would be more code than it saves.
// Thread safety: pure function; each call has its own io_context and socket.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

namespace turbine {

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

// GET `target` when `body` is empty, else POST it as application/json. The whole exchange
// (resolve, connect, write, read) must finish within timeout_ms. Unavailable, naming host:port and
// target, when the server cannot be reached, times out, or the answer is malformed or larger than
// body_limit; any HTTP status is returned as it came.
Result<HttpResponse> httpFetch(const std::string& host, const std::string& port, const std::string& target,
                               const std::string& body, int timeout_ms, size_t body_limit = 64u << 20);

}  // namespace turbine
