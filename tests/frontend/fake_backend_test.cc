// FakeBackend's producer timing: in both phase modes every request gets one token per
// token_interval; kLockstep ticks all requests together, kStaggered spreads their phases over the
// interval (different requests' emit times differ, by about interval / requests here).
#include "frontend/fake_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace turbine::frontend {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;

constexpr auto kInterval = std::chrono::milliseconds(20);
constexpr int kTokens = 6;
constexpr int kStreams = 4;

// Collects the tokens and the end of each request.
struct Collector {
  std::mutex mu;
  std::vector<int32_t> tokens[kStreams];
  int finished = 0;
  FinishReason reason[kStreams] = {};
};

GenerateRequest request(int i) {
  GenerateRequest r;
  r.request_id = "req-" + std::to_string(i);
  r.model = "fake-model";
  r.prompt_token_ids = {'p'};
  r.stop.max_tokens = kTokens;
  return r;
}

// Runs kStreams requests admitted back to back; returns each one's emit times.
std::vector<std::vector<Clock::time_point>> runStreams(FakePhases phases, Collector* c) {
  FakeBackendOptions o;
  o.token_interval = kInterval;
  o.record_emit_times = true;
  o.phases = phases;
  o.phase_slots = kStreams;
  FakeBackend backend(o);
  for (int i = 0; i < kStreams; ++i) {
    Status st = backend.generate(request(i), [c, i](GenerationChunk chunk) {
      std::lock_guard<std::mutex> lock(c->mu);
      for (int32_t t : chunk.token_ids) c->tokens[i].push_back(t);
      if (chunk.finish != FinishReason::kNone) {
        c->reason[i] = chunk.finish;
        ++c->finished;
      }
    });
    EXPECT_TRUE(st.isOk()) << st.toString();
  }
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (backend.running() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(backend.running(), 0u);
  std::vector<std::vector<Clock::time_point>> emits;
  for (int i = 0; i < kStreams; ++i) emits.push_back(backend.emitTimes("req-" + std::to_string(i)));
  return emits;
}

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// Every request got kTokens tokens, ended with "length", one token per interval (gaps within
// +-40% of it: the scheduler may be late on a busy machine, but a gap near 0 or 2x means a
// missing or doubled tick).
void expectFixedRate(const Collector& c, const std::vector<std::vector<Clock::time_point>>& emits) {
  double interval = micros(kInterval);
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(c.tokens[i].size(), static_cast<size_t>(kTokens)) << "stream " << i;
    EXPECT_EQ(c.reason[i], FinishReason::kLength) << "stream " << i;
    ASSERT_EQ(emits[i].size(), static_cast<size_t>(kTokens)) << "stream " << i;
    for (size_t k = 1; k < emits[i].size(); ++k) {
      double gap = micros(emits[i][k] - emits[i][k - 1]);
      EXPECT_GT(gap, 0.6 * interval) << "stream " << i << " token " << k;
      EXPECT_LT(gap, 1.4 * interval) << "stream " << i << " token " << k;
    }
    double span = micros(emits[i].back() - emits[i].front());
    EXPECT_NEAR(span, (kTokens - 1) * interval, 0.3 * interval) << "stream " << i;
  }
}

TEST(FakeBackendPhases, LockstepTicksAllStreamsTogether) {
  Collector c;
  auto emits = runStreams(FakePhases::kLockstep, &c);
  expectFixedRate(c, emits);
  for (int i = 1; i < kStreams; ++i) EXPECT_EQ(emits[i], emits[0]) << "stream " << i;
}

TEST(FakeBackendPhases, StaggeredKeepsTheRateAndSpreadsThePhases) {
  Collector c;
  auto emits = runStreams(FakePhases::kStaggered, &c);
  expectFixedRate(c, emits);
  // Four streams on four slots: each one's k-th token is a quarter interval after the previous
  // stream's (5 ms apart at 20 ms), so the k-th tokens of all four spread over three quarters;
  // lock-step would put them ~0 apart. On 2 busy cores a thread wakes milliseconds late (a
  // parallel ctest beside a build squeezed single gaps to 0.5 ms), so the test asks that some
  // round of the six shows most of the spread, and that no round is bunched into one tick.
  const double quarter = micros(kInterval) / kStreams;
  double widest = 0;
  for (size_t k = 0; k < static_cast<size_t>(kTokens); ++k) {
    Clock::time_point lo = emits[0][k], hi = emits[0][k];
    for (int i = 1; i < kStreams; ++i) lo = std::min(lo, emits[i][k]), hi = std::max(hi, emits[i][k]);
    widest = std::max(widest, micros(hi - lo));
  }
  EXPECT_GT(widest, 0.6 * 3 * quarter);
  for (int i = 1; i < kStreams; ++i) {
    for (size_t k = 0; k < static_cast<size_t>(kTokens); ++k) EXPECT_NE(emits[i][k], emits[0][k]);
  }
}

TEST(FakeBackendPhases, StaggeredAbortEndsTheStream) {
  FakeBackendOptions o;
  o.token_interval = std::chrono::milliseconds(2);
  o.phases = FakePhases::kStaggered;
  FakeBackend backend(o);
  std::mutex mu;
  FinishReason reason = FinishReason::kNone;
  GenerateRequest r = request(0);
  r.stop.max_tokens = 1000000;
  ASSERT_TRUE(backend.generate(r, [&](GenerationChunk chunk) {
    std::lock_guard<std::mutex> lock(mu);
    if (chunk.finish != FinishReason::kNone) reason = chunk.finish;
  }).isOk());
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  backend.abort(r.request_id);
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (backend.running() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(backend.running(), 0u);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(reason, FinishReason::kAbort);
}

}  // namespace
}  // namespace turbine::frontend
