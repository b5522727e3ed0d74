// Frontend overhead benchmark (issue 4 §4): OpenAiServer over a FakeBackend that produces one
// token per stream every --interval-us, and N concurrent streaming clients on keep-alive
// connections, each looping /v1/completions requests of --tokens tokens for --seconds.
// --phases staggered (the default): each stream ticks at the fixed rate with its own phase, the
// admitted requests spread round-robin over --phase-slots phases per interval (what a fleet of
// engines with many batches hands the frontend). --phases lockstep: every stream's token at the
// same instant (one engine handing one big batch over at once: the worst case for the frontend,
// where the last of N chunks waits behind the N-1 before it).
//
// The client runs in a separate process (this binary re-executed with --role client), on
// --client-threads event loops, so its CPU is measured apart from the server's. Steady-clock
// times are comparable across the two processes (CLOCK_MONOTONIC).
//
// Reports per level: requests/s, SSE chunks/s, added latency per token = client receive time -
// backend emit time (the instant the tick's chunks were ready, before the first sink ran; it
// includes the kernel's loopback delivery and the client's wake-up and parse: an upper bound)
// at p50/p90/p99/p99.9/max, and CPU: server I/O threads, the backend thread (which also runs the
// frontend's sinks), the client; chunks per server I/O-thread CPU-second.
// Usage: frontend_bench [--streams 1,100,1000] [--tokens 64] [--interval-us 10000] [--seconds 5]
//   [--phases staggered|lockstep] [--phase-slots 100]
//   [--io-threads 2] [--client-threads 1] [--server-cpus LIST] [--client-cpus LIST]
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>  // before Asio: Boost 1.74 awaitable.hpp uses std::exchange unincluded
#include <vector>

#include <boost/asio.hpp>
#include <fmt/format.h>

#include "frontend/fake_backend.h"
#include "frontend/openai_server.h"

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace turbine::frontend;

namespace {

struct Config {
  std::vector<int> streams = {1, 100, 1000};
  int tokens = 64;
  int interval_us = 10000;
  FakePhases phases = FakePhases::kStaggered;
  int phase_slots = 100;
  double seconds = 5.0;
  int io_threads = 2;
  int client_threads = 1;
  std::string server_cpus;  // "0" or "0,1": sched_setaffinity of the server process
  std::string client_cpus;
  // --role client only:
  bool client = false;
  int port = 0;
  std::string out;
};

std::vector<int> parseList(const std::string& v) {
  std::vector<int> out;
  std::stringstream ss(v);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(std::stoi(x));
  return out;
}

void pinTo(const std::string& cpus) {
  if (cpus.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : parseList(cpus)) CPU_SET(c, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) fmt::print(stderr, "sched_setaffinity {} failed\n", cpus);
}

struct CpuTime {
  double user = 0;
  double sys = 0;
  double total() const { return user + sys; }
  CpuTime operator-(const CpuTime& o) const { return {user - o.user, sys - o.sys}; }
};

// CPU seconds used so far by this process's threads named `thread_name` (clock ticks: 10 ms).
CpuTime threadCpu(const std::string& thread_name) {
  CpuTime total;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return total;
  long ticks = sysconf(_SC_CLK_TCK);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string base = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(base + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name != thread_name) continue;
    std::ifstream stat(base + "/stat");
    std::string line;
    std::getline(stat, line);
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string tok;
    long utime = 0, stime = 0;
    for (int field = 3; rest >> tok; ++field) {
      if (field == 14) utime = std::stol(tok);
      if (field == 15) {
        stime = std::stol(tok);
        break;
      }
    }
    total.user += static_cast<double>(utime) / static_cast<double>(ticks);
    total.sys += static_cast<double>(stime) / static_cast<double>(ticks);
  }
  closedir(d);
  return total;
}

double processCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int64_t nanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// One client connection looping streaming requests; records the receive time of every content
// event (finish_reason null) of each request.
struct Stream : std::enable_shared_from_this<Stream> {
  Stream(net::io_context& ioc, const Config& cfg, Clock::time_point until)
      : socket(ioc), cfg(cfg), until(until) {}

  void start() {
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(cfg.port)));
    socket.set_option(tcp::no_delay(true));
    std::string body = fmt::format(
        R"({{"model":"fake-model","prompt":"p","max_tokens":{},"stream":true,"ignore_eos":true}})", cfg.tokens);
    request = fmt::format("POST /v1/completions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                          "Content-Length: {}\r\n\r\n{}", body.size(), body);
    send();
  }
  void send() {
    id.clear();
    recv_times.clear();
    pending.clear();
    net::async_write(socket, net::buffer(request), [self = shared_from_this()](auto ec, size_t) {
      if (!ec) self->read();
    });
  }
  void read() {
    socket.async_read_some(net::buffer(buf), [self = shared_from_this()](auto ec, size_t n) {
      if (!ec) self->onData(n);
    });
  }
  void onData(size_t n) {
    int64_t now = nanos(Clock::now());
    pending.append(buf, n);
    size_t pos = 0;
    while ((pos = pending.find("data: ", scan)) != std::string::npos) {
      size_t end = pending.find("\n\n", pos);
      if (end == std::string::npos) break;
      std::string_view ev(pending.data() + pos + 6, end - pos - 6);
      if (ev == "[DONE]") {
        done_seen = true;
      } else {
        if (id.empty()) {
          auto a = ev.find("\"id\":\"") + 6;
          id = std::string(ev.substr(a, ev.find('"', a) - a));
        }
        if (ev.find("\"finish_reason\":null") != std::string_view::npos) recv_times.push_back(now);
        ++events;
      }
      scan = end + 2;
    }
    if (done_seen && pending.find("\r\n0\r\n\r\n", scan > 8 ? scan - 8 : 0) != std::string::npos) {
      completed.emplace_back(id + "-0", std::move(recv_times));
      done_seen = false;
      scan = 0;
      if (Clock::now() < until) send();
      return;
    }
    read();
  }

  tcp::socket socket;
  const Config& cfg;
  Clock::time_point until;
  std::string request;
  char buf[16384];
  std::string pending;
  size_t scan = 0;
  bool done_seen = false;
  std::string id;
  std::vector<int64_t> recv_times;
  std::vector<std::pair<std::string, std::vector<int64_t>>> completed;
  uint64_t events = 0;
};

// --role client: runs the streams, then writes "cpu <s> events <n>" and one line per completed
// request ("<id> <recv ns>...") to cfg.out.
int runClient(const Config& cfg) {
  pinTo(cfg.client_cpus);
  int n = cfg.streams.at(0);
  int threads = std::max(1, cfg.client_threads);
  auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.seconds));
  std::vector<std::unique_ptr<net::io_context>> loops;
  for (int t = 0; t < threads; ++t) loops.push_back(std::make_unique<net::io_context>(1));
  std::vector<std::shared_ptr<Stream>> all;
  for (int i = 0; i < n; ++i) {
    all.push_back(std::make_shared<Stream>(*loops[static_cast<size_t>(i % threads)], cfg, until));
    all.back()->start();
  }
  std::vector<std::thread> pool;
  for (auto& l : loops) pool.emplace_back([&l] { l->run(); });
  for (auto& t : pool) t.join();
  uint64_t events = 0;
  for (auto& s : all) events += s->events;
  FILE* f = std::fopen(cfg.out.c_str(), "w");
  if (f == nullptr) return 1;
  fmt::print(f, "cpu {} events {}\n", processCpuSeconds(), events);
  for (auto& s : all) {
    for (auto& [rid, times] : s->completed) fmt::print(f, "{} {}\n", rid, fmt::join(times, " "));
  }
  std::fclose(f);
  return 0;
}

struct ClientResult {
  double cpu = 0;
  uint64_t events = 0;
  std::vector<std::pair<std::string, std::vector<int64_t>>> requests;
};

bool spawnClient(const Config& cfg, int streams, uint16_t port, const std::string& out) {
  std::vector<std::string> args = {"/proc/self/exe", "--role", "client", "--port", std::to_string(port),
                                   "--streams", std::to_string(streams), "--tokens", std::to_string(cfg.tokens),
                                   "--seconds", std::to_string(cfg.seconds), "--client-threads",
                                   std::to_string(cfg.client_threads), "--out", out};
  if (!cfg.client_cpus.empty()) {
    args.push_back("--client-cpus");
    args.push_back(cfg.client_cpus);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

ClientResult readClient(const std::string& path) {
  ClientResult r;
  std::ifstream in(path);
  std::string word;
  in >> word >> r.cpu >> word >> r.events;
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::pair<std::string, std::vector<int64_t>> req;
    ls >> req.first;
    for (int64_t t; ls >> t;) req.second.push_back(t);
    r.requests.push_back(std::move(req));
  }
  return r;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

void runLevel(const Config& cfg, int streams) {
  FakeBackendOptions bo;
  bo.token_interval = std::chrono::microseconds(cfg.interval_us);
  bo.record_emit_times = true;
  bo.phases = cfg.phases;
  bo.phase_slots = cfg.phase_slots;
  bo.script = "The quick brown fox jumps over the lazy dog. ";
  auto backend = std::make_shared<FakeBackend>(bo);
  OpenAiServerOptions so;
  so.http.port = 0;
  so.http.io_threads = cfg.io_threads;
  OpenAiServer server(so, backend);
  if (auto st = server.start(); !st.isOk()) {
    fmt::print(stderr, "start: {}\n", st.toString());
    return;
  }
  std::string out = fmt::format("/tmp/frontend_bench.{}.{}", getpid(), streams);
  CpuTime http0 = threadCpu("turbine-http"), backend0 = threadCpu(bo.thread_name);
  auto t0 = Clock::now();
  bool ok = spawnClient(cfg, streams, server.port(), out);
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  CpuTime http = threadCpu("turbine-http") - http0;
  double http_cpu = http.total();
  double backend_cpu = (threadCpu(bo.thread_name) - backend0).total();
  if (!ok) {
    fmt::print(stderr, "client process failed\n");
    return;
  }
  ClientResult client = readClient(out);
  std::remove(out.c_str());
  std::vector<double> added_us;
  for (auto& [rid, times] : client.requests) {
    auto emits = backend->emitTimes(rid);
    for (size_t k = 0; k < std::min(emits.size(), times.size()); ++k) {
      added_us.push_back(static_cast<double>(times[k] - nanos(emits[k])) / 1e3);
    }
  }
  auto requests = static_cast<double>(client.requests.size());
  auto events = static_cast<double>(client.events);
  double p50 = percentile(added_us, 0.50), p90 = percentile(added_us, 0.90);
  double p99 = percentile(added_us, 0.99), p999 = percentile(added_us, 0.999);
  double mx = added_us.empty() ? 0 : *std::max_element(added_us.begin(), added_us.end());
  fmt::print("streams={:5d} tok/s/stream={:.0f} req/s={:8.1f} sse_chunks/s={:8.0f} added_us p50={:.0f} p90={:.0f} "
             "p99={:.0f} p99.9={:.0f} max={:.0f} | cpu_s http={:.2f} backend={:.2f} client={:.2f} | "
             "chunks_per_http_cpu_s={:.0f} http_us_per_chunk={:.2f} (user {:.2f} sys {:.2f}) "
             "client_us_per_chunk={:.2f}\n",
             streams, 1e6 / cfg.interval_us, requests / wall, events / wall, p50, p90, p99, p999, mx, http_cpu,
             backend_cpu, client.cpu, http_cpu > 0 ? events / http_cpu : 0.0,
             events > 0 ? http_cpu * 1e6 / events : 0.0, events > 0 ? http.user * 1e6 / events : 0.0,
             events > 0 ? http.sys * 1e6 / events : 0.0, events > 0 ? client.cpu * 1e6 / events : 0.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--streams") cfg.streams = parseList(v);
    else if (k == "--tokens") cfg.tokens = std::stoi(v);
    else if (k == "--interval-us") cfg.interval_us = std::stoi(v);
    else if (k == "--seconds") cfg.seconds = std::stod(v);
    else if (k == "--phase-slots") cfg.phase_slots = std::stoi(v);
    else if (k == "--phases" && v == "lockstep") cfg.phases = FakePhases::kLockstep;
    else if (k == "--phases" && v == "staggered") cfg.phases = FakePhases::kStaggered;
    else if (k == "--io-threads") cfg.io_threads = std::stoi(v);
    else if (k == "--client-threads") cfg.client_threads = std::stoi(v);
    else if (k == "--server-cpus") cfg.server_cpus = v;
    else if (k == "--client-cpus") cfg.client_cpus = v;
    else if (k == "--role") cfg.client = v == "client";
    else if (k == "--port") cfg.port = std::stoi(v);
    else if (k == "--out") cfg.out = v;
    else {
      fmt::print(stderr, "unknown flag or value: {} {} (--phases takes staggered or lockstep)\n", k, v);
      return 2;
    }
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (cfg.client) return runClient(cfg);
  pinTo(cfg.server_cpus);
  std::string phases = cfg.phases == FakePhases::kLockstep
                           ? std::string("lockstep")
                           : fmt::format("staggered({} slots/interval)", cfg.phase_slots);
  fmt::print("frontend_bench: phases={} tokens/request={} interval={}us io_threads={} client_threads={} "
             "(separate process) seconds={} cores={} server_cpus={} client_cpus={}\n",
             phases, cfg.tokens, cfg.interval_us, cfg.io_threads, cfg.client_threads, cfg.seconds,
             std::thread::hardware_concurrency(), cfg.server_cpus.empty() ? "any" : cfg.server_cpus,
             cfg.client_cpus.empty() ? "any" : cfg.client_cpus);
  for (int n : cfg.streams) runLevel(cfg, n);
  return 0;
}
