// EtcdHarness: a real `etcd` (Debian etcd-server) for tests, on free loopback ports, in a
// temporary data directory; stopped (SIGTERM, then SIGKILL) and the directory removed at the end.
// start() answers a reason string when it cannot run (no binary, not healthy in time); tests
// then GTEST_SKIP() with it.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "runtime/etcd_client.h"

extern char** environ;

namespace turbine::testing {

class EtcdHarness {
 public:
  ~EtcdHarness() { stop(); }

  // "" when etcd is up (endpoint() then answers), else why not.
  std::string start() {
    const char* candidates[] = {"/usr/bin/etcd", "/usr/local/bin/etcd"};
    std::string binary;
    for (const char* c : candidates) {
      if (::access(c, X_OK) == 0) binary = c;
    }
    if (binary.empty()) return "no etcd binary (install Debian's etcd-server)";
    char tmpl[] = "/tmp/turbine-etcd-XXXXXX";
    if (!::mkdtemp(tmpl)) return "cannot create a temporary directory";
    dir_ = tmpl;
    const int client_port = freePort(), peer_port = freePort();
    endpoint_ = "http://127.0.0.1:" + std::to_string(client_port);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port);
    std::vector<std::string> args = {binary, "--name", "t", "--data-dir", dir_ + "/data",
                                     "--listen-client-urls", endpoint_, "--advertise-client-urls", endpoint_,
                                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                     "--initial-cluster", "t=" + peer, "--log-outputs", dir_ + "/etcd.log",
                                     "--logger", "zap"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, (dir_ + "/stdout.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, (dir_ + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = ::posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return "cannot start " + binary;
    }
    auto client = runtime::EtcdClient::create(endpoint_, 500);
    for (int i = 0; i < 100; ++i) {
      if (client && client->health().isOk()) return "";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "etcd did not become healthy within 10 s (log in " + dir_ + ")";
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 50 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (i == 30) ::kill(pid_, SIGKILL);
      }
      pid_ = -1;
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  const std::string& endpoint() const { return endpoint_; }

 private:
  static int freePort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    const int port = ntohs(addr.sin_port);
    ::close(fd);
    return port;
  }

  pid_t pid_ = -1;
  std::string dir_;
  std::string endpoint_;
};

}  // namespace turbine::testing
