// KV block transfer over TCP, for disaggregated serving: a decode worker fetches from a prefill
// worker the KV blocks of a prompt that the prefill worker just computed. Blocks are named by
// 64-bit ids (block hashes); all blocks of one answer have the same byte size.
//
// The server answers each fetch with the *leading run* of the asked ids that its BlockSource holds
// (possibly none): a decode worker recomputes whatever follows the run.
//
// Wire format (all integers little-endian; one TCP connection may carry several request/response
// pairs in turn; fetchBlocks sends one and closes):
//   request:        "TKVQ" | version u32 (= 1) | n u32 | n x id u64
//   response, OK:   "TKVR" | version u32 (= 1) | code u32 (= 0) | n u32 | block_bytes u64
//                   | n x id u64 | n * block_bytes payload bytes (block i at i * block_bytes)
//   response, error: "TKVR" | version u32 (= 1) | code u32 (a turbine::StatusCode, != 0)
//                   | message length u32 (<= 4096) | message bytes
// A request with n > max_ids, a wrong magic or version gets an error response (when it can still
// be sent) and its connection is closed.
//
// Thread safety: fetchBlocks may be called from any number of threads at once (each call has its
// own connection). TransferServer's methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace turbine::transfer {

// Blocks of KV data named by 64-bit ids, all of one size.
struct BlockBatch {
  uint64_t block_bytes = 0;
  std::vector<uint64_t> ids;
  std::vector<uint8_t> data;  // ids.size() * block_bytes bytes; block i at i * block_bytes
};

// Answers a fetch with the leading run of `ids` it holds (possibly none), in the order asked.
// Called on a server thread (one per connection, so possibly several at once); may block for a
// while (it may wait on an engine's step loop), but ~TransferServer waits for calls in progress to
// return. An error status is sent back to the client as the fetch's error. An answer that is not a
// leading run of `ids`, or whose data is not ids.size() * block_bytes bytes, is a bug of the
// source: the client gets Internal. Never called with an empty `ids` (the server answers that
// itself with an empty batch).
using BlockSource = std::function<Result<BlockBatch>(const std::vector<uint64_t>& ids)>;

struct TransferServerOptions {
  std::string host = "127.0.0.1";  // a numeric IPv4/IPv6 address or a name to bind
  int port = 0;                    // 0: a free port (address() says which)
  size_t max_ids = 65536;          // per request; more is refused (InvalidArgument to the client)
  int max_connections = 64;        // more concurrent connections are closed at once
  // A peer that makes no progress (sends or accepts no byte) for longer is dropped; also the
  // longest a connection may sit idle between requests.
  std::chrono::milliseconds io_timeout{10000};
};

// Counters since start. requests: well-formed requests read in full, plus those refused for
// n > max_ids; blocks_sent / bytes_sent: blocks and payload bytes
// (n * block_bytes, headers not counted) of OK answers written in full; errors: malformed
// requests (magic, version, n > max_ids, truncated), source errors, source answers that break the
// contract, I/O failures, and peers that stall for io_timeout mid-message or before their first
// request. Not errors: a connection closed by its peer between requests, one idle for io_timeout
// after a request, one closed at once for max_connections.
struct TransferServerStats {
  int64_t requests = 0, blocks_sent = 0, bytes_sent = 0, errors = 0;
};

// Serves BlockSource answers on a TCP port: one accept thread plus one thread per live connection
// (a thread whose connection ended is parked for reuse by the next one, up to 10 s).
class TransferServer {
 public:
  // Binds and listens. InvalidArgument naming host:port for a port out of [0, 65535], an empty
  // host, max_ids == 0 or max_connections < 1; IoError naming host:port when it cannot resolve,
  // bind or listen.
  static Result<std::unique_ptr<TransferServer>> start(TransferServerOptions options,
                                                       BlockSource source);
  // Stops: closes the listener, shuts down every connection (a fetch in flight gets Unavailable at
  // once), then joins its threads, which waits for source calls in progress to return.
  ~TransferServer();

  TransferServer(const TransferServer&) = delete;
  TransferServer& operator=(const TransferServer&) = delete;

  std::string address() const;  // "host:port" ("[v6]:port" for an IPv6 host), the bound port
  TransferServerStats stats() const;

 private:
  class Impl;
  explicit TransferServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct FetchOptions {
  std::chrono::milliseconds timeout{10000};  // the whole fetch: resolve, connect, send, receive
  uint64_t max_bytes = uint64_t{1} << 34;    // a response announcing more payload is refused (DataLoss)
};

// Connects to `address` ("host:port", "[v6]:port"), asks for `ids`, returns the leading run the
// server holds (block_bytes as the server answered; an empty batch when it holds none).
// InvalidArgument: a malformed address. Unavailable: cannot resolve or connect, or the connection
// is lost. DeadlineExceeded: the fetch took longer than options.timeout. DataLoss: a malformed or
// oversized response (wrong magic/version/status code, more ids than asked, ids that are not the
// leading run asked, n * block_bytes above max_bytes or overflowing). A server-side error comes
// back with the server's code and message.
Result<BlockBatch> fetchBlocks(const std::string& address, const std::vector<uint64_t>& ids,
                               const FetchOptions& options = {});

}  // namespace turbine::transfer
