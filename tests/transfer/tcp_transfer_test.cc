// TransferServer / fetchBlocks over loopback: round trips checked byte for byte, leading runs,
// errors, timeouts, garbage from raw clients, lies from a raw fake server, concurrency, shutdown.
#include "transfer/tcp_transfer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace turbine::transfer {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Blocks of random bytes by id; answers the leading run it holds.
class BlockStore {
 public:
  BlockStore(uint64_t block_bytes, const std::vector<uint64_t>& ids, uint32_t seed)
      : block_bytes_(block_bytes) {
    std::mt19937_64 rng(seed);
    for (uint64_t id : ids) {
      std::vector<uint8_t> b(block_bytes);
      for (auto& x : b) x = static_cast<uint8_t>(rng());
      blocks_[id] = std::move(b);
    }
  }
  Result<BlockBatch> operator()(const std::vector<uint64_t>& ids) const {
    BlockBatch out;
    out.block_bytes = block_bytes_;
    for (uint64_t id : ids) {
      auto it = blocks_.find(id);
      if (it == blocks_.end()) break;
      out.ids.push_back(id);
      out.data.insert(out.data.end(), it->second.begin(), it->second.end());
    }
    return out;
  }
  // The bytes a correct fetch of the leading `n` of `ids` returns.
  std::vector<uint8_t> expected(const std::vector<uint64_t>& ids, size_t n) const {
    std::vector<uint8_t> out;
    for (size_t i = 0; i < n; ++i) {
      const auto& b = blocks_.at(ids[i]);
      out.insert(out.end(), b.begin(), b.end());
    }
    return out;
  }

 private:
  uint64_t block_bytes_;
  std::map<uint64_t, std::vector<uint8_t>> blocks_;
};

std::vector<uint64_t> idRange(uint64_t first, size_t n) {
  std::vector<uint64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = first + i * 0x9e3779b97f4a7c15ULL;  // scattered 64-bit ids
  return ids;
}

std::unique_ptr<TransferServer> startServer(BlockSource source, TransferServerOptions options = {}) {
  auto server = TransferServer::start(std::move(options), std::move(source));
  EXPECT_TRUE(server.isOk()) << server.status().toString();
  return server.isOk() ? std::move(server).value() : nullptr;
}

int portOf(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

// A raw loopback TCP socket: a listener on a free port, or one connected to `port`.
int rawListener(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}
int rawConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}
void sendAll(int fd, const std::vector<uint8_t>& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t r = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (r <= 0) return;
    done += static_cast<size_t>(r);
  }
}
// Everything the peer sends until it closes (or `limit` passes).
std::vector<uint8_t> readUntilClose(int fd, std::chrono::milliseconds limit = 3000ms) {
  std::vector<uint8_t> out;
  auto end = Clock::now() + limit;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return out;
    uint8_t buf[4096];
    ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
    if (r <= 0) return out;
    out.insert(out.end(), buf, buf + r);
  }
}

// Little-endian message builders.
struct Bytes {
  std::vector<uint8_t> v;
  Bytes& raw(const char* s) { v.insert(v.end(), s, s + std::strlen(s)); return *this; }
  Bytes& u32(uint32_t x) { for (int i = 0; i < 4; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i))); return *this; }
  Bytes& u64(uint64_t x) { for (int i = 0; i < 8; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i))); return *this; }
};
std::vector<uint8_t> request(const std::vector<uint64_t>& ids) {
  Bytes b;
  b.raw("TKVQ").u32(1).u32(static_cast<uint32_t>(ids.size()));
  for (uint64_t id : ids) b.u64(id);
  return b.v;
}

// Waits until pred() holds (or 3 s pass).
template <typename Pred>
bool eventually(Pred pred) {
  auto end = Clock::now() + 3s;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

void expectBatch(const Result<BlockBatch>& got, const BlockStore& store, const std::vector<uint64_t>& ids,
                 size_t n, uint64_t block_bytes) {
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(got->block_bytes, block_bytes);
  EXPECT_EQ(got->ids, std::vector<uint64_t>(ids.begin(), ids.begin() + static_cast<ptrdiff_t>(n)));
  ASSERT_EQ(got->data.size(), n * block_bytes);
  EXPECT_TRUE(got->data == store.expected(ids, n)) << "payload bytes differ";
}

TEST(TcpTransferTest, RoundTripsRandomBlocksByteForByte) {
  struct Case { uint64_t block_bytes; size_t n; };
  for (Case c : {Case{1, 1}, Case{4096, 3}, Case{256 << 10, 64}, Case{16 << 10, 1024}, Case{333, 17}}) {
    SCOPED_TRACE(std::to_string(c.n) + " x " + std::to_string(c.block_bytes));
    auto ids = idRange(c.block_bytes, c.n);
    auto store = std::make_shared<BlockStore>(c.block_bytes, ids, static_cast<uint32_t>(c.n));
    auto server = startServer([store](const std::vector<uint64_t>& q) { return (*store)(q); });
    ASSERT_NE(server, nullptr);
    expectBatch(fetchBlocks(server->address(), ids), *store, ids, c.n, c.block_bytes);
    // The server counts a response once its last byte is written, maybe after we read it.
    EXPECT_TRUE(eventually([&] { return server->stats().bytes_sent > 0; }));
    auto s = server->stats();
    EXPECT_EQ(s.requests, 1);
    EXPECT_EQ(s.blocks_sent, static_cast<int64_t>(c.n));
    EXPECT_EQ(s.bytes_sent, static_cast<int64_t>(c.n * c.block_bytes));
    EXPECT_EQ(s.errors, 0);
  }
}

TEST(TcpTransferTest, AnswersTheLeadingRunTheSourceHolds) {
  auto ids = idRange(7, 6);
  std::vector<uint64_t> held(ids.begin(), ids.begin() + 3);
  held.push_back(ids[4]);  // held, but after a gap: not part of the leading run
  auto store = std::make_shared<BlockStore>(1000, held, 3);
  auto server = startServer([store](const std::vector<uint64_t>& q) { return (*store)(q); });
  ASSERT_NE(server, nullptr);
  expectBatch(fetchBlocks(server->address(), ids), *store, ids, 3, 1000);

  auto none = fetchBlocks(server->address(), {ids[3], ids[4]});
  ASSERT_TRUE(none.isOk()) << none.status().toString();
  EXPECT_TRUE(none->ids.empty());
  EXPECT_TRUE(none->data.empty());

  auto empty = fetchBlocks(server->address(), {});  // answered without asking the source
  ASSERT_TRUE(empty.isOk()) << empty.status().toString();
  EXPECT_TRUE(empty->ids.empty());
  EXPECT_EQ(server->stats().errors, 0);
}

TEST(TcpTransferTest, SourceErrorComesBackWithItsCodeAndMessage) {
  auto server = startServer([](const std::vector<uint64_t>& q) -> Result<BlockBatch> {
    return notFound("no KV for " + std::to_string(q.size()) + " blocks: request 42 was evicted");
  });
  ASSERT_NE(server, nullptr);
  auto got = fetchBlocks(server->address(), {1, 2});
  ASSERT_FALSE(got.isOk());
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(got.status().message(), "no KV for 2 blocks: request 42 was evicted");
  EXPECT_EQ(server->stats().errors, 1);
}

TEST(TcpTransferTest, SourceAnswerThatBreaksTheContractIsInternal) {
  auto server = startServer([](const std::vector<uint64_t>& q) -> Result<BlockBatch> {
    BlockBatch b;
    b.block_bytes = 8;
    b.ids = {q[0] + 1};  // not the id asked
    b.data.resize(8);
    return b;
  });
  ASSERT_NE(server, nullptr);
  auto got = fetchBlocks(server->address(), {5});
  EXPECT_EQ(got.status().code(), StatusCode::kInternal) << got.status().toString();
}

TEST(TcpTransferTest, MoreThanMaxIdsIsRefused) {
  TransferServerOptions options;
  options.max_ids = 4;
  auto store = std::make_shared<BlockStore>(64, idRange(1, 4), 1);
  auto server = startServer([store](const std::vector<uint64_t>& q) { return (*store)(q); }, options);
  ASSERT_NE(server, nullptr);
  expectBatch(fetchBlocks(server->address(), idRange(1, 4)), *store, idRange(1, 4), 4, 64);
  auto five = fetchBlocks(server->address(), idRange(1, 5));
  EXPECT_EQ(five.status().code(), StatusCode::kInvalidArgument) << five.status().toString();
  EXPECT_NE(five.status().message().find("max_ids"), std::string::npos) << five.status().message();
  // A request far larger than the socket buffers: the refusal still arrives while we send.
  auto big = fetchBlocks(server->address(), idRange(1, 1 << 20));
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument) << big.status().toString();
  EXPECT_TRUE(eventually([&] { return server->stats().errors == 2; })) << server->stats().errors;
}

TEST(TcpTransferTest, UnreachableAddressIsUnavailableQuickly) {
  int port = 0;
  ::close(rawListener(&port));  // a port nobody listens on
  auto t0 = Clock::now();
  auto got = fetchBlocks("127.0.0.1:" + std::to_string(port), {1});
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().toString();
  EXPECT_NE(got.status().message().find(std::to_string(port)), std::string::npos);
  EXPECT_LT(Clock::now() - t0, 1s);
}

TEST(TcpTransferTest, MalformedAddressIsInvalidArgument) {
  for (const char* a : {"", "127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:http", "127.0.0.1:0",
                        "127.0.0.1:65536", "127.0.0.1:-1", "::1:80", "[::1", "[::1]80", "[]:80"}) {
    auto got = fetchBlocks(a, {1});
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << a << ": " << got.status().toString();
  }
}

TEST(TcpTransferTest, ServerThatNeverAnswersIsDeadlineExceeded) {
  int port = 0;
  int listener = rawListener(&port);  // the kernel completes the handshake; nobody ever reads
  FetchOptions options;
  options.timeout = 200ms;
  auto t0 = Clock::now();
  auto got = fetchBlocks("127.0.0.1:" + std::to_string(port), {1, 2, 3}, options);
  auto took = Clock::now() - t0;
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded) << got.status().toString();
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 1s);
  ::close(listener);
}

TEST(TcpTransferTest, StartErrorsNameHostAndPort) {
  auto bad_port = TransferServer::start({.port = 70000}, [](const auto&) { return BlockBatch{}; });
  EXPECT_EQ(bad_port.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_port.status().message().find("127.0.0.1:70000"), std::string::npos);
  auto first = startServer([](const auto&) { return BlockBatch{}; });
  ASSERT_NE(first, nullptr);
  int port = portOf(first->address());
  auto taken = TransferServer::start({.port = port}, [](const auto&) { return BlockBatch{}; });
  EXPECT_EQ(taken.status().code(), StatusCode::kIoError);
  EXPECT_NE(taken.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << taken.status().message();
}

// Raw clients that send garbage: each is counted as an error and dropped, and the server serves on.
TEST(TcpTransferTest, SurvivesGarbageClients) {
  TransferServerOptions options;
  options.io_timeout = 200ms;
  options.max_ids = 1000;
  auto store = std::make_shared<BlockStore>(512, idRange(1, 8), 5);
  auto server = startServer([store](const std::vector<uint64_t>& q) { return (*store)(q); }, options);
  ASSERT_NE(server, nullptr);
  const int port = portOf(server->address());
  struct Garbage { const char* what; std::vector<uint8_t> bytes; bool close_early; };
  std::vector<Garbage> cases = {
      {"wrong magic", Bytes().raw("HTTP").u32(1).u32(1).u64(1).v, false},
      {"wrong version", Bytes().raw("TKVQ").u32(9).u32(1).u64(1).v, false},
      {"huge n", Bytes().raw("TKVQ").u32(1).u32(0xffffffffu).v, false},
      {"disconnect mid-request", Bytes().raw("TKVQ").u32(1).u32(10).u64(1).u64(2).v, true},
      {"stall mid-header", Bytes().raw("TKV").v, false},
      {"stall mid-ids", Bytes().raw("TKVQ").u32(1).u32(3).u64(1).v, false},
      {"silent from the start", {}, false},
  };
  int64_t errors = 0;
  for (const auto& g : cases) {
    SCOPED_TRACE(g.what);
    int fd = rawConnect(port);
    sendAll(fd, g.bytes);
    if (g.close_early) {
      ::close(fd);
    } else {
      auto t0 = Clock::now();
      readUntilClose(fd);  // the server answers (or not) and closes; a stall is dropped after 200 ms
      EXPECT_LT(Clock::now() - t0, 2s);
      ::close(fd);
    }
    ++errors;
    EXPECT_TRUE(eventually([&] { return server->stats().errors == errors; })) << server->stats().errors;
    expectBatch(fetchBlocks(server->address(), idRange(1, 8)), *store, idRange(1, 8), 8, 512);
  }
  // A connection that closes without a request is not an error.
  ::close(rawConnect(port));
  expectBatch(fetchBlocks(server->address(), idRange(1, 2)), *store, idRange(1, 2), 2, 512);
  EXPECT_EQ(server->stats().errors, errors);
}

TEST(TcpTransferTest, SeveralRequestsOnOneConnection) {
  auto store = std::make_shared<BlockStore>(16, idRange(1, 4), 9);
  auto server = startServer([store](const std::vector<uint64_t>& q) { return (*store)(q); });
  ASSERT_NE(server, nullptr);
  int fd = rawConnect(portOf(server->address()));
  auto one = request({idRange(1, 4)[0]});
  auto two = request(idRange(1, 4));
  one.insert(one.end(), two.begin(), two.end());
  sendAll(fd, one);
  ::shutdown(fd, SHUT_WR);
  auto got = readUntilClose(fd);
  ::close(fd);
  auto ids = idRange(1, 4);
  Bytes want;
  want.raw("TKVR").u32(1).u32(0).u32(1).u64(16).u64(ids[0]);
  for (uint8_t x : store->expected(ids, 1)) want.v.push_back(x);
  want.raw("TKVR").u32(1).u32(0).u32(4).u64(16);
  for (uint64_t id : ids) want.u64(id);
  for (uint8_t x : store->expected(ids, 4)) want.v.push_back(x);
  EXPECT_TRUE(got == want.v) << got.size() << " bytes, expected " << want.v.size();
  EXPECT_EQ(server->stats().requests, 2);
  EXPECT_EQ(server->stats().errors, 0);
}

TEST(TcpTransferTest, IdleAfterARequestIsNotAnError) {
  TransferServerOptions options;
  options.io_timeout = 100ms;
  auto server = startServer([](const auto&) { return BlockBatch{}; }, options);
  ASSERT_NE(server, nullptr);
  int fd = rawConnect(portOf(server->address()));
  sendAll(fd, request({1}));
  auto t0 = Clock::now();
  auto got = readUntilClose(fd);  // the answer, then the server closes the idle connection
  EXPECT_LT(Clock::now() - t0, 2s);
  ::close(fd);
  EXPECT_EQ(got.size(), 24u);
  EXPECT_EQ(server->stats().requests, 1);
  EXPECT_EQ(server->stats().errors, 0);
}

// A fake server that reads one request and answers `response`; the fetch's status code.
StatusCode fetchFromFakeServer(const std::vector<uint8_t>& response, const std::vector<uint64_t>& ids,
                               FetchOptions options = {}) {
  int port = 0;
  int listener = rawListener(&port);
  std::thread fake([&] {
    int fd = ::accept(listener, nullptr, nullptr);
    std::vector<uint8_t> req(12 + 8 * ids.size());
    size_t done = 0;
    while (done < req.size()) {
      ssize_t r = ::recv(fd, req.data() + done, req.size() - done, 0);
      if (r <= 0) break;
      done += static_cast<size_t>(r);
    }
    EXPECT_TRUE(req == request(ids));
    sendAll(fd, response);
    ::shutdown(fd, SHUT_WR);  // a truncated answer ends here
    readUntilClose(fd, 2s);
    ::close(fd);
  });
  options.timeout = 2s;
  auto got = fetchBlocks("127.0.0.1:" + std::to_string(port), ids, options);
  fake.join();
  ::close(listener);
  return got.status().code();
}

TEST(TcpTransferTest, LyingServerIsDataLoss) {
  auto ok = [](uint32_t n, uint64_t block_bytes) {
    Bytes b;
    b.raw("TKVR").u32(1).u32(0).u32(n).u64(block_bytes);
    return b;
  };
  auto payload = [](Bytes b, size_t bytes) { b.v.resize(b.v.size() + bytes, 0xab); return b.v; };
  // A well-formed answer parses (the fake itself is right).
  EXPECT_EQ(fetchFromFakeServer(payload(ok(2, 4).u64(1).u64(2), 8), {1, 2, 3}), StatusCode::kOk);
  // Not the leading run: skips the first id asked.
  EXPECT_EQ(fetchFromFakeServer(payload(ok(2, 4).u64(2).u64(3), 8), {1, 2, 3}), StatusCode::kDataLoss);
  // More ids than asked.
  EXPECT_EQ(fetchFromFakeServer(payload(ok(3, 4).u64(1).u64(2).u64(3), 12), {1, 2}), StatusCode::kDataLoss);
  // n * block_bytes above max_bytes, and overflowing 64 bits.
  FetchOptions small;
  small.max_bytes = 1 << 20;
  EXPECT_EQ(fetchFromFakeServer(ok(2, 1 << 20).u64(1).u64(2).v, {1, 2}, small), StatusCode::kDataLoss);
  EXPECT_EQ(fetchFromFakeServer(ok(2, uint64_t{1} << 63).u64(1).u64(2).v, {1, 2}), StatusCode::kDataLoss);
  // Wrong magic, wrong version, unknown status code, an oversized error message.
  EXPECT_EQ(fetchFromFakeServer(Bytes().raw("TKVQ").u32(1).u32(0).u32(0).u64(0).v, {1}), StatusCode::kDataLoss);
  EXPECT_EQ(fetchFromFakeServer(Bytes().raw("TKVR").u32(2).u32(0).u32(0).u64(0).v, {1}), StatusCode::kDataLoss);
  EXPECT_EQ(fetchFromFakeServer(Bytes().raw("TKVR").u32(1).u32(999).u32(0).v, {1}), StatusCode::kDataLoss);
  EXPECT_EQ(fetchFromFakeServer(Bytes().raw("TKVR").u32(1).u32(2).u32(1u << 30).v, {1}), StatusCode::kDataLoss);
  // A truncated payload: the connection is lost mid-response.
  EXPECT_EQ(fetchFromFakeServer(payload(ok(2, 4).u64(1).u64(2), 5), {1, 2}), StatusCode::kUnavailable);
}

TEST(TcpTransferTest, ManyConcurrentFetchesAreAllCorrect) {
  auto ids = idRange(100, 64);
  auto store = std::make_shared<BlockStore>(8192, ids, 11);
  auto server = startServer([store](const std::vector<uint64_t>& q) { return (*store)(q); });
  ASSERT_NE(server, nullptr);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      for (int i = 0; i < 20; ++i) {
        size_t start = rng() % ids.size(), n = 1 + rng() % (ids.size() - start);
        std::vector<uint64_t> ask(ids.begin() + static_cast<ptrdiff_t>(start),
                                  ids.begin() + static_cast<ptrdiff_t>(start + n));
        if (i % 4 == 0) ask.push_back(1);  // one unknown id at the end: the run stops before it
        auto got = fetchBlocks(server->address(), ask);
        if (got.isOk() && got->ids == std::vector<uint64_t>(ask.begin(), ask.begin() + static_cast<ptrdiff_t>(n)) &&
            got->data == store->expected(ask, n)) {
          ++good;
        } else {
          ADD_FAILURE() << "thread " << t << " fetch " << i << ": " << got.status().toString();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 160);
  EXPECT_EQ(server->stats().requests, 160);
  EXPECT_EQ(server->stats().errors, 0);
}

TEST(TcpTransferTest, TooManyConnectionsAreClosed) {
  TransferServerOptions options;
  options.max_connections = 2;
  auto server = startServer([](const auto&) { return BlockBatch{}; }, options);
  ASSERT_NE(server, nullptr);
  const int port = portOf(server->address());
  int a = rawConnect(port), b = rawConnect(port);
  std::this_thread::sleep_for(50ms);  // both accepted
  int c = rawConnect(port);
  auto t0 = Clock::now();
  EXPECT_TRUE(readUntilClose(c).empty());  // closed at once
  EXPECT_LT(Clock::now() - t0, 1s);
  ::close(c);
  ::close(a);
  EXPECT_TRUE(eventually([&] { return fetchBlocks(server->address(), {1}).isOk(); }));
  ::close(b);
}

TEST(TcpTransferTest, DestroyingTheServerDoesNotWaitForPeers) {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  auto server = startServer([&](const std::vector<uint64_t>&) -> Result<BlockBatch> {
    std::unique_lock lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });  // like a source waiting on a busy step loop
    return BlockBatch{};
  });
  ASSERT_NE(server, nullptr);
  const int port = portOf(server->address());
  int idle = rawConnect(port);                                  // connected, says nothing
  int partial = rawConnect(port);
  sendAll(partial, Bytes().raw("TKVQ").u32(1).v);                // stopped mid-header
  auto pending = std::async(std::launch::async, [&] { return fetchBlocks(server->address(), {1, 2}); });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 3s, [&] { return entered; }));
  }
  auto t0 = Clock::now();
  auto destroyed = std::async(std::launch::async, [&] { server.reset(); });
  // The fetch in flight fails at once, while the source still blocks.
  ASSERT_EQ(pending.wait_for(2s), std::future_status::ready);
  auto got = pending.get();
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().toString();
  EXPECT_LT(Clock::now() - t0, 1s);
  EXPECT_TRUE(readUntilClose(idle, 1s).empty());  // the idle peers are closed too
  EXPECT_TRUE(readUntilClose(partial, 1s).empty());
  EXPECT_EQ(destroyed.wait_for(50ms), std::future_status::timeout);  // still waiting on the source
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(destroyed.wait_for(2s), std::future_status::ready);
  ::close(idle);
  ::close(partial);
}

TEST(TcpTransferTest, DestroyingAnIdleServerIsPrompt) {
  auto server = startServer([](const auto&) { return BlockBatch{}; });
  ASSERT_NE(server, nullptr);
  int idle = rawConnect(portOf(server->address()));
  auto t0 = Clock::now();
  server.reset();
  EXPECT_LT(Clock::now() - t0, 500ms);
  ::close(idle);
}

}  // namespace
}  // namespace turbine::transfer
