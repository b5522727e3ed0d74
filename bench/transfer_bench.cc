// KV block transfer over TCP loopback (transfer/tcp_transfer.h): one fetchBlocks per iteration
// against a TransferServer in the same process, bytes/s of block payload received.
//  - Fetch/<blocks>/<block_kib>: a fetch of `blocks` blocks the server holds. Each fetch opens a
//    connection, sends the ids, and the server's source copies the blocks out of a resident store
//    into a BlockBatch (as a worker copies them out of its KV pool); the kernel copies them into
//    and out of the socket; the client receives them into a fresh vector (first-touch page faults
//    included). So ~3 copies of the payload, two of them (source and receive) on this thread's
//    peer, on a 2-vCPU machine where client and server compete.
//  - FetchNone: a fetch of one id the server does not hold: connect + request + empty answer,
//    the fixed cost of a fetch.
//  - Memcpy/<blocks>/<block_kib>: one memcpy of the same bytes from the store into a resident
//    buffer: the limit (one copy), measured in the same binary.
//  - TcpStream/<mib>: the kernel's part alone: <mib> MiB per iteration over one long-lived
//    loopback connection (4 MiB socket buffers, TCP_NODELAY), sent by a thread from a resident
//    buffer and received into another: no connection setup, no source copy, no allocation.
// Run: build/bench/transfer_bench --benchmark_min_time=0.5
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "transfer/tcp_transfer.h"

namespace turbine::transfer {
namespace {

constexpr size_t kStoreBytes = size_t{64} << 20;  // ids 0..kStoreBytes/block_bytes - 1 per block size

// Resident stores of blocks, one per block size, and a server answering from them (the id's high
// 32 bits name the block size in KiB, the low 32 bits the block index).
struct Fixture {
  std::map<uint64_t, std::vector<uint8_t>> stores;  // block KiB -> kStoreBytes of blocks
  std::unique_ptr<TransferServer> server;

  Fixture() {
    for (uint64_t kib : {16, 256}) {
      auto& s = stores[kib];
      s.resize(kStoreBytes);
      for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<uint8_t>(i * 131 + (i >> 12));
    }
    auto started = TransferServer::start({}, [this](const std::vector<uint64_t>& ids) { return answer(ids); });
    if (!started.isOk()) std::abort();
    server = std::move(started).value();
  }

  Result<BlockBatch> answer(const std::vector<uint64_t>& ids) const {
    BlockBatch b;
    auto it = stores.find(ids[0] >> 32);
    if (it == stores.end()) return b;
    b.block_bytes = (ids[0] >> 32) << 10;
    size_t n = 0;
    while (n < ids.size() && (ids[n] >> 32) == (ids[0] >> 32) &&
           ((ids[n] & 0xffffffffu) + 1) * b.block_bytes <= kStoreBytes) {
      ++n;
    }
    b.ids.assign(ids.begin(), ids.begin() + static_cast<ptrdiff_t>(n));
    b.data.resize(n * b.block_bytes);
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(b.data.data() + i * b.block_bytes,
                  it->second.data() + (ids[i] & 0xffffffffu) * b.block_bytes, b.block_bytes);
    }
    return b;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

std::vector<uint64_t> blockIds(uint64_t block_kib, int64_t n) {
  std::vector<uint64_t> ids(static_cast<size_t>(n));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = (block_kib << 32) | i;
  return ids;
}

void BM_Fetch(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto block_kib = static_cast<uint64_t>(state.range(1));
  const std::string address = fixture().server->address();
  const auto ids = blockIds(block_kib, n);
  const uint64_t want = static_cast<uint64_t>(n) * (block_kib << 10);
  for (auto _ : state) {
    auto got = fetchBlocks(address, ids);
    if (!got.isOk() || got->data.size() != want) {
      state.SkipWithError(got.isOk() ? "short answer" : got.status().toString().c_str());
      return;
    }
    benchmark::DoNotOptimize(got->data.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(want));
}
BENCHMARK(BM_Fetch)
    ->Args({1, 256})->Args({64, 256})->Args({1024, 16})
    ->ArgNames({"blocks", "block_kib"})->UseRealTime();

void BM_FetchNone(benchmark::State& state) {
  const std::string address = fixture().server->address();
  for (auto _ : state) {
    auto got = fetchBlocks(address, {uint64_t{7} << 32});
    if (!got.isOk() || !got->ids.empty()) {
      state.SkipWithError("unexpected answer");
      return;
    }
  }
}
BENCHMARK(BM_FetchNone)->UseRealTime();

void BM_Memcpy(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) * (static_cast<size_t>(state.range(1)) << 10);
  const auto& src = fixture().stores.at(static_cast<uint64_t>(state.range(1)));
  std::vector<uint8_t> dst(bytes, 1);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Memcpy)
    ->Args({1, 256})->Args({64, 256})->Args({1024, 16})
    ->ArgNames({"blocks", "block_kib"})->UseRealTime();

void setSocketOptions(int fd) {
  int one = 1, bytes = 4 << 20;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

void BM_TcpStream(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  setSocketOptions(listener);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    state.SkipWithError("cannot listen");
    return;
  }
  int client = ::socket(AF_INET, SOCK_STREAM, 0);
  setSocketOptions(client);
  if (::connect(client, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) std::abort();
  int server = ::accept(listener, nullptr, nullptr);
  std::vector<uint8_t> src(bytes, 0x5a), dst(bytes, 0);
  // The sender streams until the receiver closes its end.
  std::thread sender([&] {
    for (;;) {
      for (size_t done = 0; done < bytes;) {
        ssize_t r = ::send(server, src.data() + done, bytes - done, MSG_NOSIGNAL);
        if (r <= 0) return;
        done += static_cast<size_t>(r);
      }
    }
  });
  for (auto _ : state) {
    for (size_t done = 0; done < bytes;) {
      ssize_t r = ::recv(client, dst.data() + done, bytes - done, 0);
      if (r <= 0) std::abort();
      done += static_cast<size_t>(r);
    }
  }
  ::close(client);  // unread data: a reset, which ends the sender's send()
  sender.join();
  ::close(server);
  ::close(listener);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_TcpStream)->Arg(16)->ArgName("mib")->UseRealTime();

}  // namespace
}  // namespace turbine::transfer

BENCHMARK_MAIN();
