// Connectors: the local one runs real child processes (sh -c "exec sleep ..."), scales them up and
// down, replaces a child that died, and stops them all; the log one remembers.
#include "planner/connector.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace turbine::planner {
namespace {

// Polls until pred() or 10 s.
template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

TEST(ConnectorTest, LocalConnectorStartsStopsAndReplacesWorkers) {
  LocalConnectorOptions o;
  o.agg_command = "sleep 60";
  o.stop_timeout_s = 5;
  LocalConnector c(o);
  ASSERT_TRUE(c.apply({3, 0, 0}).isOk());
  EXPECT_EQ(c.running(), (Replicas{3, 0, 0}));
  ASSERT_TRUE(c.apply({1, 0, 0}).isOk());
  EXPECT_EQ(c.running(), (Replicas{1, 0, 0}));
  EXPECT_TRUE(eventually([&] { return c.stopping() == 0; }));  // sleep dies of SIGTERM at once
  // A worker that exits on its own stops counting; the next apply replaces it.
  ASSERT_TRUE(c.apply({2, 0, 0}).isOk());
  ASSERT_EQ(c.runningPids().size(), 2u);
  kill(c.runningPids().back(), SIGKILL);
  EXPECT_TRUE(eventually([&] { return c.running().agg == 1; }));
  ASSERT_TRUE(c.apply({2, 0, 0}).isOk());
  EXPECT_EQ(c.running().agg, 2);
  c.shutdown();
  EXPECT_EQ(c.running(), (Replicas{}));
  EXPECT_EQ(c.stopping(), 0);
}

TEST(ConnectorTest, AWorkerThatIgnoresSigtermIsKilledAfterTheTimeout) {
  LocalConnectorOptions o;
  o.agg_command = "sh -c 'trap \"\" TERM; sleep 60'";
  o.stop_timeout_s = 0.3;
  LocalConnector c(o);
  ASSERT_TRUE(c.apply({1, 0, 0}).isOk());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the trap is set
  ASSERT_TRUE(c.apply({0, 0, 0}).isOk());
  EXPECT_EQ(c.stopping(), 1);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] { return c.stopping() == 0; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));
}

// The planner waits for its stop signals with them blocked; its workers must not inherit that, or
// SIGTERM would never reach them (only the SIGKILL after the timeout).
TEST(ConnectorTest, WorkersStartWithNoSignalBlocked) {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  LocalConnectorOptions o;
  o.agg_command = "sleep 60";
  o.stop_timeout_s = 60;
  LocalConnector c(o);
  ASSERT_TRUE(c.apply({1, 0, 0}).isOk());
  ASSERT_TRUE(c.apply({0, 0, 0}).isOk());
  EXPECT_TRUE(eventually([&] { return c.stopping() == 0; }));  // SIGTERM, not the 60 s SIGKILL
  c.shutdown();
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

TEST(ConnectorTest, RolesWithoutACommandAreRefused) {
  LocalConnectorOptions o;
  o.prefill_command = "sleep 60";
  LocalConnector c(o);
  const Status st = c.apply({0, 1, 1});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--decode-command"), std::string::npos) << st.message();
  LocalConnector none(LocalConnectorOptions{});
  EXPECT_NE(none.apply({1, 0, 0}).message().find("--worker-command"), std::string::npos);
  c.shutdown();
  LogConnector log;
  ASSERT_TRUE(log.apply({0, 2, 3}).isOk());
  EXPECT_EQ(log.last(), (Replicas{0, 2, 3}));
  EXPECT_EQ(EtcdConnector::keyFor("ns", "m"), "turbine/ns/planner/m");
}

}  // namespace
}  // namespace turbine::planner
