// Frontend overhead benchmark (issue 4 §4): OpenAiServer over a FakeBackend that produces one
// token per stream every --interval-us, N concurrent streaming clients on keep-alive
// connections, each looping /v1/completions requests of --tokens tokens for --seconds.
// Reports requests/s, added latency per token (client receive time - backend emit time, so it
// includes the client's own parsing: an upper bound) at p50/p99, and SSE chunks per second of
// server I/O-thread CPU time. Usage: frontend_bench [--streams 1,100,1000] [--tokens 64]
//   [--interval-us 10000] [--seconds 5] [--io-threads 1]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
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
  double seconds = 5.0;
  int io_threads = 1;
};

// CPU seconds used so far by this process's threads named "turbine-http".
double httpThreadCpuSeconds() {
  double total = 0;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return 0;
  long ticks = sysconf(_SC_CLK_TCK);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string base = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(base + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name != "turbine-http") continue;
    std::ifstream stat(base + "/stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    std::istringstream rest(line.substr(close + 2));
    std::string tok;
    long utime = 0, stime = 0;
    for (int field = 3; rest >> tok; ++field) {
      if (field == 14) utime = std::stol(tok);
      if (field == 15) { stime = std::stol(tok); break; }
    }
    total += static_cast<double>(utime + stime) / static_cast<double>(ticks);
  }
  closedir(d);
  return total;
}

struct Stream : std::enable_shared_from_this<Stream> {
  Stream(net::io_context& ioc, uint16_t port, const Config& cfg, Clock::time_point until)
      : socket(ioc), port(port), cfg(cfg), until(until) {}

  void start() {
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    socket.set_option(tcp::no_delay(true));
    std::string body = fmt::format(R"({{"model":"fake-model","prompt":"p","max_tokens":{},"stream":true,"ignore_eos":true}})", cfg.tokens);
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
      if (ec) return;
      self->onData(n);
    });
  }
  void onData(size_t n) {
    auto now = Clock::now();
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
      completed.push_back({id + "-0", std::move(recv_times)});
      done_seen = false;
      scan = 0;
      if (Clock::now() < until) return send();
      return;
    }
    read();
  }

  tcp::socket socket;
  uint16_t port;
  const Config& cfg;
  Clock::time_point until;
  std::string request;
  char buf[16384];
  std::string pending;
  size_t scan = 0;
  bool done_seen = false;
  std::string id;
  std::vector<Clock::time_point> recv_times;
  std::vector<std::pair<std::string, std::vector<Clock::time_point>>> completed;
  uint64_t events = 0;
};

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
  net::io_context ioc;
  auto t0 = Clock::now();
  auto until = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.seconds));
  std::vector<std::shared_ptr<Stream>> all;
  for (int i = 0; i < streams; ++i) {
    all.push_back(std::make_shared<Stream>(ioc, server.port(), cfg, until));
    all.back()->start();
  }
  double cpu0 = httpThreadCpuSeconds();
  ioc.run();
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = httpThreadCpuSeconds() - cpu0;
  std::vector<double> added_us;
  uint64_t requests = 0, events = 0;
  for (auto& s : all) {
    events += s->events;
    for (auto& [rid, times] : s->completed) {
      ++requests;
      auto emits = backend->emitTimes(rid);
      for (size_t k = 0; k < std::min(emits.size(), times.size()); ++k) {
        added_us.push_back(std::chrono::duration<double, std::micro>(times[k] - emits[k]).count());
      }
    }
  }
  double p50 = percentile(added_us, 0.50), p99 = percentile(added_us, 0.99);
  fmt::print("streams={:5d} requests={:6d} req/s={:9.1f} sse_chunks/s={:9.0f} added_latency_us p50={:7.1f} p99={:8.1f} "
             "http_cpu_s={:.2f} chunks_per_cpu_s={:.0f}\n",
             streams, requests, static_cast<double>(requests) / wall, static_cast<double>(events) / wall, p50, p99,
             cpu, cpu > 0 ? static_cast<double>(events) / cpu : 0.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--streams") {
      cfg.streams.clear();
      std::stringstream ss(v);
      for (std::string x; std::getline(ss, x, ',');) cfg.streams.push_back(std::stoi(x));
    } else if (k == "--tokens") {
      cfg.tokens = std::stoi(v);
    } else if (k == "--interval-us") {
      cfg.interval_us = std::stoi(v);
    } else if (k == "--seconds") {
      cfg.seconds = std::stod(v);
    } else if (k == "--io-threads") {
      cfg.io_threads = std::stoi(v);
    } else {
      fmt::print(stderr, "unknown flag {}\n", k);
      return 2;
    }
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  fmt::print("frontend_bench: tokens/request={} interval={}us io_threads={} seconds={} cores={}\n", cfg.tokens,
             cfg.interval_us, cfg.io_threads, cfg.seconds, std::thread::hardware_concurrency());
  for (int n : cfg.streams) runLevel(cfg, n);
  return 0;
}
