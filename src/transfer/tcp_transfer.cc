#include "transfer/tcp_transfer.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <condition_variable>
#include <list>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <utility>

namespace turbine::transfer {
namespace {

// The wire format is little-endian and is read and written as host integers.
static_assert(std::endian::native == std::endian::little, "tcp_transfer assumes a little-endian host");
static_assert(sizeof(size_t) == sizeof(uint64_t), "tcp_transfer assumes a 64-bit host");

using Clock = std::chrono::steady_clock;

constexpr char kRequestMagic[4] = {'T', 'K', 'V', 'Q'};
constexpr char kResponseMagic[4] = {'T', 'K', 'V', 'R'};
constexpr uint32_t kVersion = 1;
constexpr size_t kRequestHeaderBytes = 12;    // magic, version, n
constexpr size_t kResponseHeaderBytes = 12;   // magic, version, code
constexpr size_t kOkHeaderBytes = 12;         // n, block_bytes (after the response header)
constexpr uint32_t kMaxSentMessage = 4096;    // the server truncates error messages to this
constexpr uint32_t kMaxReadMessage = 65536;   // the client refuses longer ones
constexpr int kSocketBufferBytes = 4 << 20;   // SO_SNDBUF / SO_RCVBUF asked for (the kernel caps)
constexpr std::chrono::seconds kWorkerIdleLife{10};  // a parked server thread exits after this

uint32_t loadU32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t loadU64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
void storeU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void storeU64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

std::string errnoText(int err) { return std::strerror(err); }

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept { reset(std::exchange(o.fd_, -1)); return *this; }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) { if (fd_ >= 0) ::close(fd_); fd_ = fd; }
 private:
  int fd_;
};

// When a blocking step gives up: at `at` (the whole operation's deadline) or after `stall`
// without progress, whichever comes first.
struct Deadline {
  Clock::time_point at = Clock::time_point::max();
  std::chrono::milliseconds stall = std::chrono::milliseconds::max();

  int pollTimeoutMs() const {
    auto now = Clock::now();
    if (at <= now) return 0;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(at - now);
    return static_cast<int>(std::min<int64_t>({left.count(), stall.count(), 1 << 30}));
  }
};

// Waits until `fd` is ready for `events`. DeadlineExceeded when the deadline passes first.
Status waitFd(int fd, short events, const Deadline& deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, deadline.pollTimeoutMs());
    if (r > 0) return Status::ok();  // readable, writable, or an error / hangup the I/O will show
    if (r == 0) return Status(StatusCode::kDeadlineExceeded, "timed out waiting for the peer");
    if (errno != EINTR) return unavailable("poll: " + errnoText(errno));
  }
}

// Reads exactly n bytes into buf. Unavailable on EOF or a socket error, DeadlineExceeded on a
// timeout; *got says how many bytes arrived before that.
Status readFull(int fd, void* buf, size_t n, const Deadline& deadline, size_t* got = nullptr) {
  auto* p = static_cast<uint8_t*>(buf);
  size_t done = 0;
  Status st;
  while (done < n) {
    ssize_t r = ::recv(fd, p + done, n - done, 0);
    if (r > 0) { done += static_cast<size_t>(r); continue; }
    if (r == 0) { st = unavailable("connection closed by the peer"); break; }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) { st = unavailable("recv: " + errnoText(errno)); break; }
    st = waitFd(fd, POLLIN, deadline);
    if (!st.isOk()) break;
  }
  if (got) *got = done;
  return st;
}

// Writes every byte of iov[0..count) (modified in place). MSG_NOSIGNAL: a closed peer is an
// error (Unavailable), never a SIGPIPE.
Status writeFull(int fd, iovec* iov, size_t count, const Deadline& deadline) {
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    ssize_t r = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return unavailable("send: " + errnoText(errno));
      TURBINE_RETURN_IF_ERROR(waitFd(fd, POLLOUT, deadline));
      continue;
    }
    auto left = static_cast<size_t>(r);
    while (count > 0 && left >= iov->iov_len) { left -= iov->iov_len; ++iov; --count; }
    if (count > 0) {
      iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return Status::ok();
}

void configureSocket(int fd) {
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int bytes = kSocketBufferBytes;
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

std::string joinHostPort(const std::string& host, int port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Splits "host:port" / "[v6]:port"; port in [1, 65535].
Status parseAddress(const std::string& address, std::string* host, int* port) {
  auto bad = [&](const char* why) {
    return invalidArgument("malformed transfer address '" + address + "': " + why);
  };
  size_t colon;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return bad("expected [host]:port");
    }
    *host = address.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = address.rfind(':');
    if (colon == std::string::npos) return bad("expected host:port");
    *host = address.substr(0, colon);
    if (host->find(':') != std::string::npos) return bad("an IPv6 host must be in brackets");
  }
  if (host->empty()) return bad("empty host");
  std::string p = address.substr(colon + 1);
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("port is not a number");
  }
  *port = std::stoi(p);
  if (*port < 1 || *port > 65535) return bad("port out of [1, 65535]");
  return Status::ok();
}

using AddrInfo = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

Result<AddrInfo> resolve(const std::string& host, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return unavailable("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  return AddrInfo(res, &::freeaddrinfo);
}

// A connected non-blocking socket to host:port, or Unavailable / DeadlineExceeded.
Result<Fd> connectTo(const std::string& host, int port, const Deadline& deadline) {
  TURBINE_ASSIGN_OR_RETURN(AddrInfo ai, resolve(host, port, false));
  Status last = unavailable("no address");
  for (addrinfo* a = ai.get(); a != nullptr; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (fd.get() < 0) { last = unavailable("socket: " + errnoText(errno)); continue; }
    configureSocket(fd.get());
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) return fd;
    if (errno != EINPROGRESS) { last = unavailable("connect: " + errnoText(errno)); continue; }
    TURBINE_RETURN_IF_ERROR(waitFd(fd.get(), POLLOUT, deadline));
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0) return fd;
    last = unavailable("connect: " + errnoText(err));
  }
  return last;
}

Status sendRequest(int fd, const std::vector<uint64_t>& ids, const Deadline& deadline) {
  uint8_t head[kRequestHeaderBytes];
  std::memcpy(head, kRequestMagic, 4);
  storeU32(head + 4, kVersion);
  storeU32(head + 8, static_cast<uint32_t>(ids.size()));
  iovec iov[2] = {{head, sizeof(head)},
                  {const_cast<uint64_t*>(ids.data()), ids.size() * sizeof(uint64_t)}};
  return writeFull(fd, iov, ids.empty() ? 1 : 2, deadline);
}

// Reads one response to `ids`. *from_server: the status is the server's own error answer.
Result<BlockBatch> readResponse(int fd, const std::vector<uint64_t>& ids, const FetchOptions& options,
                                const Deadline& deadline, bool* from_server) {
  *from_server = false;
  uint8_t head[kResponseHeaderBytes];
  TURBINE_RETURN_IF_ERROR(readFull(fd, head, sizeof(head), deadline));
  if (std::memcmp(head, kResponseMagic, 4) != 0) return dataLoss("bad response magic");
  if (uint32_t v = loadU32(head + 4); v != kVersion) {
    return dataLoss("response version " + std::to_string(v) + ", expected " + std::to_string(kVersion));
  }
  uint32_t code = loadU32(head + 8);
  if (code != 0) {
    if (code > static_cast<uint32_t>(StatusCode::kInternal)) {
      return dataLoss("unknown status code " + std::to_string(code) + " in the response");
    }
    uint8_t len_bytes[4];
    TURBINE_RETURN_IF_ERROR(readFull(fd, len_bytes, 4, deadline));
    uint32_t len = loadU32(len_bytes);
    if (len > kMaxReadMessage) return dataLoss("error message of " + std::to_string(len) + " bytes");
    std::string message(len, '\0');
    TURBINE_RETURN_IF_ERROR(readFull(fd, message.data(), len, deadline));
    *from_server = true;
    return Status(static_cast<StatusCode>(code), std::move(message));
  }
  uint8_t ok[kOkHeaderBytes];
  TURBINE_RETURN_IF_ERROR(readFull(fd, ok, sizeof(ok), deadline));
  uint32_t n = loadU32(ok);
  BlockBatch batch;
  batch.block_bytes = loadU64(ok + 4);
  if (n > ids.size()) {
    return dataLoss(std::to_string(n) + " ids answered, " + std::to_string(ids.size()) + " asked");
  }
  if (batch.block_bytes != 0 && n > options.max_bytes / batch.block_bytes) {
    return dataLoss("response announces " + std::to_string(n) + " blocks of " +
                    std::to_string(batch.block_bytes) + " bytes, above max_bytes " +
                    std::to_string(options.max_bytes));
  }
  batch.ids.resize(n);
  TURBINE_RETURN_IF_ERROR(readFull(fd, batch.ids.data(), n * sizeof(uint64_t), deadline));
  if (!std::equal(batch.ids.begin(), batch.ids.end(), ids.begin())) {
    return dataLoss("answered ids are not the leading run of the ids asked");
  }
  try {
    batch.data.resize(n * batch.block_bytes);
  } catch (const std::bad_alloc&) {
    return resourceExhausted("cannot allocate " + std::to_string(n * batch.block_bytes) + " bytes");
  }
  TURBINE_RETURN_IF_ERROR(readFull(fd, batch.data.data(), batch.data.size(), deadline));
  return batch;
}

}  // namespace

// ---- Client ----

Result<BlockBatch> fetchBlocks(const std::string& address, const std::vector<uint64_t>& ids,
                               const FetchOptions& options) {
  std::string host;
  int port = 0;
  TURBINE_RETURN_IF_ERROR(parseAddress(address, &host, &port));
  const std::string what = "fetch from " + address;
  if (ids.size() > std::numeric_limits<uint32_t>::max()) {
    return invalidArgument(what + ": " + std::to_string(ids.size()) + " ids in one request");
  }
  Deadline deadline{Clock::now() + options.timeout};
  auto conn = connectTo(host, port, deadline);
  if (!conn.isOk()) return conn.status().withPrefix(what);
  int fd = conn->get();
  Status sent = sendRequest(fd, ids, deadline);
  if (!sent.isOk() && sent.code() != StatusCode::kUnavailable) return sent.withPrefix(what);
  // A server that refuses a request answers, then closes while the request may still be arriving
  // (so our send fails): its answer is still in our receive queue.
  bool from_server = false;
  auto batch = readResponse(fd, ids, options, deadline, &from_server);
  if (from_server) return batch.status();
  if (!sent.isOk()) return sent.withPrefix(what);
  if (!batch.isOk()) return batch.status().withPrefix(what);
  return batch;
}

// ---- Server ----

class TransferServer::Impl {
 public:
  Impl(TransferServerOptions options, BlockSource source, Fd listener, Fd wake, std::string address)
      : options_(std::move(options)), source_(std::move(source)), listener_(std::move(listener)),
        wake_(std::move(wake)), address_(std::move(address)) {
    accept_thread_ = std::thread([this] { acceptLoop(); });
  }
  ~Impl();

  const std::string& address() const { return address_; }
  TransferServerStats stats() const {
    return {requests_.load(), blocks_sent_.load(), bytes_sent_.load(), errors_.load()};
  }

 private:
  // A thread that serves one connection at a time. Between connections it stays parked for
  // kWorkerIdleLife, so that the next connection does not pay for a new thread.
  struct Worker {
    int fd = -1;        // the connection it serves; -1 while parked or done
    bool done = false;  // the thread has returned: join it
    std::condition_variable wake;
    std::thread thread;
  };

  void acceptLoop();
  void acceptPending();
  void handOff(int fd);
  void reapFinished();
  void workerLoop(Worker* w);
  void serveConnection(int fd);
  // Reads and answers one request. *clean_end: the connection ended normally before a new
  // request began (closed by the peer, or idle for io_timeout after an earlier request).
  Status serveRequest(int fd, bool first, bool* clean_end);
  Status answer(int fd, const std::vector<uint64_t>& ids);
  void sendError(int fd, const Status& status);

  Deadline stallDeadline() const { return Deadline{Clock::time_point::max(), options_.io_timeout}; }

  const TransferServerOptions options_;
  const BlockSource source_;
  Fd listener_;
  Fd wake_;  // an eventfd: written once to stop the accept loop
  const std::string address_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> requests_{0}, blocks_sent_{0}, bytes_sent_{0}, errors_{0};
  std::thread accept_thread_;

  std::mutex mu_;                 // guards the fields below
  std::list<Worker> workers_;     // serving, parked or done
  std::vector<Worker*> parked_;   // waiting for a connection
  int live_ = 0;                  // connections being served
};

TransferServer::Impl::~Impl() {
  stopping_ = true;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
  accept_thread_.join();
  listener_.reset();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    for (Worker& w : workers_) {
      if (w.fd >= 0) ::shutdown(w.fd, SHUT_RDWR);  // wakes its poll; the worker closes the fd
      w.wake.notify_one();
      threads.push_back(std::move(w.thread));
    }
  }
  for (auto& t : threads) t.join();  // a thread inside the source waits for it to return
}

void TransferServer::Impl::acceptLoop() {
  while (!stopping_) {
    pollfd p[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    int r = ::poll(p, 2, 1000);
    reapFinished();
    if (stopping_) break;
    if (r > 0 && (p[0].revents & POLLIN)) acceptPending();
  }
}

void TransferServer::Impl::acceptPending() {
  for (;;) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // EAGAIN: none left. EMFILE / ENFILE / ENOBUFS: back off instead of spinning on poll.
      if (errno != EAGAIN && errno != EWOULDBLOCK) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    handOff(fd);
  }
}

// Gives a new connection to a parked worker, or to a new one.
void TransferServer::Impl::handOff(int fd) {
  std::lock_guard lock(mu_);
  if (live_ >= options_.max_connections) { ::close(fd); return; }
  if (!parked_.empty()) {
    Worker* w = parked_.back();
    parked_.pop_back();
    w->fd = fd;
    ++live_;
    w->wake.notify_one();
    return;
  }
  Worker& w = workers_.emplace_back();
  w.fd = fd;
  try {
    w.thread = std::thread([this, &w] { workerLoop(&w); });
    ++live_;
  } catch (const std::system_error&) {
    ::close(fd);
    workers_.pop_back();
    ++errors_;
  }
}

void TransferServer::Impl::reapFinished() {
  std::vector<std::thread> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (!it->done) { ++it; continue; }
      finished.push_back(std::move(it->thread));
      it = workers_.erase(it);
    }
  }
  for (auto& t : finished) t.join();
}

void TransferServer::Impl::workerLoop(Worker* w) {
  std::unique_lock lock(mu_);
  while (w->fd >= 0) {
    const int fd = w->fd;
    lock.unlock();
    serveConnection(fd);
    lock.lock();
    ::close(fd);  // under mu_: the destructor's shutdown() never meets a reused fd number
    w->fd = -1;
    --live_;
    if (stopping_) break;
    parked_.push_back(w);
    w->wake.wait_for(lock, kWorkerIdleLife, [&] { return w->fd >= 0 || stopping_; });
    if (w->fd < 0) std::erase(parked_, w);  // retired (idle too long) or stopping
  }
  w->done = true;
}

void TransferServer::Impl::serveConnection(int fd) {
  for (bool first = true; !stopping_; first = false) {
    bool clean_end = false;
    Status st = serveRequest(fd, first, &clean_end);
    if (clean_end) break;
    if (!st.isOk()) { ++errors_; break; }
  }
}

Status TransferServer::Impl::serveRequest(int fd, bool first, bool* clean_end) {
  const Deadline deadline = stallDeadline();
  uint8_t head[kRequestHeaderBytes];
  size_t got = 0;
  Status st = readFull(fd, head, sizeof(head), deadline, &got);
  if (!st.isOk()) {
    *clean_end = got == 0 && (st.code() == StatusCode::kUnavailable || !first);
    return st;
  }
  if (std::memcmp(head, kRequestMagic, 4) != 0) {
    st = invalidArgument("bad request magic");
  } else if (uint32_t v = loadU32(head + 4); v != kVersion) {
    st = unimplemented("request version " + std::to_string(v) + "; this server speaks " +
                       std::to_string(kVersion));
  } else if (uint32_t n = loadU32(head + 8); n > options_.max_ids) {
    ++requests_;
    st = invalidArgument("request for " + std::to_string(n) + " ids; max_ids is " +
                         std::to_string(options_.max_ids));
  }
  if (!st.isOk()) {  // the connection is out of step: answer, then close it
    sendError(fd, st);
    return st;
  }
  std::vector<uint64_t> ids(loadU32(head + 8));
  TURBINE_RETURN_IF_ERROR(readFull(fd, ids.data(), ids.size() * sizeof(uint64_t), deadline));
  ++requests_;
  return answer(fd, ids);
}

// Answers a well-formed request; a source error goes to the client and keeps the connection.
Status TransferServer::Impl::answer(int fd, const std::vector<uint64_t>& ids) {
  Result<BlockBatch> res = BlockBatch{};
  if (!ids.empty()) {
    try {
      res = source_(ids);
    } catch (const std::exception& e) {
      res = internalError(std::string("block source threw: ") + e.what());
    }
  }
  if (res.isOk()) {
    const BlockBatch& b = *res;
    if (b.ids.size() > ids.size() || !std::equal(b.ids.begin(), b.ids.end(), ids.begin())) {
      res = internalError("block source answered ids that are not the leading run asked");
    } else if (b.block_bytes != 0 && b.ids.size() > std::numeric_limits<uint64_t>::max() / b.block_bytes) {
      res = internalError("block source answered an overflowing batch");
    } else if (b.data.size() != b.ids.size() * b.block_bytes) {
      res = internalError("block source answered " + std::to_string(b.data.size()) + " bytes for " +
                          std::to_string(b.ids.size()) + " blocks of " + std::to_string(b.block_bytes));
    }
  }
  if (!res.isOk()) {
    ++errors_;
    sendError(fd, res.status());
    return Status::ok();
  }
  BlockBatch& b = *res;
  uint8_t head[kResponseHeaderBytes + kOkHeaderBytes];
  std::memcpy(head, kResponseMagic, 4);
  storeU32(head + 4, kVersion);
  storeU32(head + 8, 0);
  storeU32(head + 12, static_cast<uint32_t>(b.ids.size()));
  storeU64(head + 16, b.block_bytes);
  iovec iov[3] = {{head, sizeof(head)},
                  {b.ids.data(), b.ids.size() * sizeof(uint64_t)},
                  {b.data.data(), b.data.size()}};
  TURBINE_RETURN_IF_ERROR(writeFull(fd, iov, 3, stallDeadline()));
  blocks_sent_ += static_cast<int64_t>(b.ids.size());
  bytes_sent_ += static_cast<int64_t>(b.data.size());
  return Status::ok();
}

void TransferServer::Impl::sendError(int fd, const Status& status) {
  const std::string& m = status.message();
  auto len = static_cast<uint32_t>(std::min<size_t>(m.size(), kMaxSentMessage));
  uint8_t head[kResponseHeaderBytes + 4];
  std::memcpy(head, kResponseMagic, 4);
  storeU32(head + 4, kVersion);
  storeU32(head + 8, static_cast<uint32_t>(status.code()));
  storeU32(head + 12, len);
  iovec iov[2] = {{head, sizeof(head)}, {const_cast<char*>(m.data()), len}};
  (void)writeFull(fd, iov, 2, stallDeadline());  // best effort: the peer may be gone
}

Result<std::unique_ptr<TransferServer>> TransferServer::start(TransferServerOptions options,
                                                              BlockSource source) {
  const std::string where = joinHostPort(options.host, options.port);
  if (options.port < 0 || options.port > 65535) return invalidArgument("transfer server " + where + ": port out of [0, 65535]");
  if (options.host.empty()) return invalidArgument("transfer server " + where + ": empty host");
  if (options.max_ids == 0 || options.max_connections < 1) {
    return invalidArgument("transfer server " + where + ": max_ids and max_connections must be positive");
  }
  if (!source) return invalidArgument("transfer server " + where + ": no block source");
  auto ai = resolve(options.host, options.port, true);
  if (!ai.isOk()) return ioError("transfer server " + where + ": " + ai.status().message());
  Fd listener;
  std::string err = "no address";
  for (addrinfo* a = ai->get(); a != nullptr && listener.get() < 0; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    int one = 1;
    if (fd.get() < 0) { err = "socket: " + errnoText(errno); continue; }
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    configureSocket(fd.get());  // accepted sockets inherit the buffer sizes
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0) { err = "bind: " + errnoText(errno); continue; }
    if (::listen(fd.get(), SOMAXCONN) != 0) { err = "listen: " + errnoText(errno); continue; }
    listener = std::move(fd);
  }
  if (listener.get() < 0) return ioError("transfer server " + where + ": " + err);
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    return ioError("transfer server " + where + ": getsockname: " + errnoText(errno));
  }
  int port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  Fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake.get() < 0) return ioError("transfer server " + where + ": eventfd: " + errnoText(errno));
  std::string address = joinHostPort(options.host, port);
  auto impl = std::make_unique<Impl>(std::move(options), std::move(source), std::move(listener),
                                     std::move(wake), std::move(address));
  return std::unique_ptr<TransferServer>(new TransferServer(std::move(impl)));
}

TransferServer::TransferServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TransferServer::~TransferServer() = default;
std::string TransferServer::address() const { return impl_->address(); }
TransferServerStats TransferServer::stats() const { return impl_->stats(); }

}  // namespace turbine::transfer
