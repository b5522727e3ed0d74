// vLLM workers behind the router: a publisher speaking vLLM's wire format and replay protocol
// (tests/runtime/vllm_publisher.py, pyzmq + msgpack, SHA-256 block hashes) over real ZeroMQ on
// loopback, read by the subscriber with ";format=vllm". What it delivers must be the hashes the
// router computes for requests (DESIGN.md §3.1 from the tokens), whatever vLLM calls them, through
// joins, lost batches (replayed), losses the replay buffer no longer covers (cleared) and a lost
// last batch (tail probe).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "kv/block_hash.h"
#include "runtime/event_receiver.h"
#include "runtime/zmq_event_plane.h"

namespace turbine::runtime {
namespace {

constexpr int32_t kBlock = 4;
constexpr kv::WorkerId kWorker = 9;
const char* const kModel = "meta-llama/Llama-3.1-8B-Instruct";

// vllm_publisher.py as a child process, driven through its stdin and stdout.
class VllmPublisher {
 public:
  VllmPublisher() {
    ::signal(SIGPIPE, SIG_IGN);  // a publisher that died fails the test, not the process
    int in[2], out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[1]);
      ::close(out[0]);
      const std::string script = std::string(TURBINE_SOURCE_DIR) + "/tests/runtime/vllm_publisher.py";
      const std::string bs = std::to_string(kBlock);
      ::execl("/usr/bin/python3", "python3", script.c_str(), bs.c_str(), "kv-events", nullptr);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = ::fdopen(in[1], "w");
    from_ = ::fdopen(out[0], "r");
    std::istringstream ready(line());
    std::string word;
    ready >> word >> pub_ >> replay_;
    if (word != "ready") pub_.clear();
  }
  ~VllmPublisher() {
    if (to_) {
      std::fputs("{\"op\": \"quit\"}\n", to_);
      std::fclose(to_);
    }
    if (from_) std::fclose(from_);
    if (pid_ > 0) {
      int status = 0;
      for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) std::this_thread::sleep_for(20ms);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  bool ok() const { return !pub_.empty(); }
  std::string endpoint() const { return pub_ + ";replay=" + replay_ + ";format=vllm;topic=kv-events"; }

  // Sends one command; returns the publisher's next seq after it.
  uint64_t send(const std::string& json) {
    std::fputs((json + "\n").c_str(), to_);
    std::fflush(to_);
    const std::string reply = line();
    return reply.rfind("ok ", 0) == 0 ? std::stoull(reply.substr(3)) : ~0ull;
  }
  uint64_t request(const std::vector<int32_t>& tokens, const char* medium = "GPU") {
    return send("{\"op\": \"request\", \"tokens\": " + list(tokens) + ", \"medium\": \"" + medium + "\"}");
  }
  uint64_t evict(const std::vector<int32_t>& tokens, int blocks) {
    return send("{\"op\": \"evict\", \"tokens\": " + list(tokens) + ", \"blocks\": " + std::to_string(blocks) + "}");
  }

 private:
  static std::string list(const std::vector<int32_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    return s + "]";
  }
  std::string line() {
    char buf[512];
    if (!from_ || !std::fgets(buf, sizeof buf, from_)) return {};
    std::string s(buf);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  std::string pub_, replay_;
};

bool havePython() {
  return std::system("/usr/bin/python3 -c 'import zmq, msgpack' >/dev/null 2>&1") == 0;
}

std::vector<int32_t> tokens(int blocks, int32_t from) {
  std::vector<int32_t> t;
  for (int i = 0; i < blocks * kBlock; ++i) t.push_back(from + i);
  return t;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The hashes a router computes for these prompts.
std::unordered_set<kv::BlockHash> requestHashes(const std::vector<std::vector<int32_t>>& prompts) {
  std::unordered_set<kv::BlockHash> out;
  for (const auto& p : prompts) {
    for (kv::BlockHash h : kv::blockHashes(kv::rootHash(kModel, ""), p, kBlock)) out.insert(h);
  }
  return out;
}

class VllmIngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!havePython()) GTEST_SKIP() << "needs /usr/bin/python3 with zmq and msgpack (python3-zmq, python3-msgpack)";
    publisher_ = std::make_unique<VllmPublisher>();
    ASSERT_TRUE(publisher_->ok()) << "vllm_publisher.py did not start";
  }
  void subscribe(int tail_probe_ms = 500) {
    ZmqEventPlaneOptions so;
    so.publish = false;
    so.subscriber.tail_probe_ms = tail_probe_ms;
    auto sub = ZmqEventPlane::create(std::move(so));
    ASSERT_TRUE(sub.isOk());
    sub_ = std::move(sub).value();
    sub_->subscribe(Topic::kKv, [this](const EventPayload& e) { rx_.onPayload(e); });
    PublisherInfo info{kWorker, kModel, kBlock};
    ASSERT_TRUE(sub_->addPublisher(publisher_->endpoint(), info).isOk());
    // The join's replay is answered (its end marker) before the test goes on.
    for (int i = 0; i < 500 && sub_->subscriberStats().joins == 0; ++i) std::this_thread::sleep_for(10ms);
    ASSERT_EQ(sub_->subscriberStats().joins, 1u);
    std::this_thread::sleep_for(100ms);  // the SUB socket's subscription reaches the publisher
  }
  // Waits until the delivered device blocks are exactly `want`.
  ::testing::AssertionResult converges(const std::unordered_set<kv::BlockHash>& want) {
    const bool ok = rx_.waitFor([&] { return rx_.blocks.hashes(kv::Tier::kDevice) == want; }, 5000ms);
    if (ok) return ::testing::AssertionSuccess();
    std::lock_guard<std::mutex> lock(rx_.mu);
    return ::testing::AssertionFailure() << "holds " << rx_.blocks.hashes(kv::Tier::kDevice).size()
                                         << " device blocks, expected " << want.size();
  }

  Receiver rx_;  // first, so destroyed last: the subscriber's thread delivers into it until closed
  std::unique_ptr<VllmPublisher> publisher_;
  std::unique_ptr<ZmqEventPlane> sub_;
};

TEST_F(VllmIngestTest, BlocksAreIndexedUnderTheHashesOfTheRequestsTokens) {
  subscribe();
  const auto a = tokens(5, 100);
  const auto b = concat(std::vector<int32_t>(a.begin(), a.begin() + 3 * kBlock), tokens(2, 900));
  publisher_->request(a);
  publisher_->request(b);
  EXPECT_TRUE(converges(requestHashes({a, b})));
  // vLLM evicts b's last block: the router forgets that one only.
  publisher_->evict(b, 1);
  auto want = requestHashes({a, std::vector<int32_t>(b.begin(), b.end() - kBlock)});
  EXPECT_TRUE(converges(want));
  // Host-tier copies (vLLM's CPU offloading) land on the host tier under the same hashes.
  publisher_->request(a, "CPU");
  ASSERT_TRUE(rx_.waitFor([&] { return rx_.blocks.size(kv::Tier::kHost) == 5; }));
  {
    std::lock_guard<std::mutex> lock(rx_.mu);
    for (kv::BlockHash h : requestHashes({a})) EXPECT_TRUE(rx_.blocks.contains(h, kv::Tier::kHost));
    for (const auto& m : rx_.kv_messages) EXPECT_EQ(m.worker_id, kWorker);
  }
  const auto stats = sub_->subscriberStats();
  EXPECT_EQ(stats.decode_errors, 0u);
  EXPECT_EQ(stats.vllm_blocks_dropped, 0u);
  EXPECT_EQ(stats.cleared, 0u);
}

TEST_F(VllmIngestTest, ALateJoinerReplaysWhatThePublisherStillBuffers) {
  const auto a = tokens(3, 100), b = tokens(4, 500);
  publisher_->request(a);
  publisher_->request(b);
  publisher_->evict(b, 2);
  subscribe();
  EXPECT_TRUE(converges(requestHashes({a, std::vector<int32_t>(b.begin(), b.begin() + 2 * kBlock)})));
  EXPECT_GE(sub_->subscriberStats().replays, 1u);
}

TEST_F(VllmIngestTest, ALostBatchIsReplayedTheVllmWay) {
  subscribe();
  const auto a = tokens(3, 100), b = tokens(3, 500), c = tokens(2, 700);
  publisher_->request(a);
  ASSERT_TRUE(converges(requestHashes({a})));
  const uint64_t replays = sub_->subscriberStats().replays;
  publisher_->send(R"({"op": "lose_next"})");
  publisher_->request(b);  // never sent on the PUB socket
  publisher_->request(c);  // its seq reveals the gap
  EXPECT_TRUE(converges(requestHashes({a, b, c})));
  const auto stats = sub_->subscriberStats();
  EXPECT_GE(stats.gaps, 1u);
  EXPECT_GT(stats.replays, replays);
  EXPECT_EQ(stats.cleared, 0u);
}

TEST_F(VllmIngestTest, ALossTheBufferNoLongerHoldsDropsTheWorkersEntries) {
  subscribe();
  const auto a = tokens(3, 100), b = tokens(3, 500), c = tokens(2, 700);
  publisher_->request(a);
  ASSERT_TRUE(converges(requestHashes({a})));
  publisher_->send(R"({"op": "lose_next"})");
  publisher_->request(b);                   // lost on the wire ...
  publisher_->send(R"({"op": "forget"})");  // ... and gone from the replay buffer
  publisher_->request(c);
  // What the router held of this worker is dropped (it may be stale); it goes on from c.
  EXPECT_TRUE(converges(requestHashes({c})));
  EXPECT_EQ(sub_->subscriberStats().cleared, 1u);
}

TEST_F(VllmIngestTest, ALostLastBatchIsFoundByTheTailProbe) {
  subscribe(200);
  const auto a = tokens(3, 100), b = tokens(2, 500);
  publisher_->request(a);
  ASSERT_TRUE(converges(requestHashes({a})));
  publisher_->send(R"({"op": "lose_next"})");
  publisher_->request(b);  // nothing after it reveals the loss
  EXPECT_TRUE(converges(requestHashes({a, b})));
  EXPECT_GE(sub_->subscriberStats().tail_probes, 1u);
}

TEST_F(VllmIngestTest, AClearFromVllmEmptiesTheWorkersEntries) {
  subscribe();
  const auto a = tokens(3, 100), b = tokens(2, 500);
  publisher_->request(a);
  ASSERT_TRUE(converges(requestHashes({a})));
  publisher_->send(R"({"op": "clear"})");
  publisher_->request(b);
  EXPECT_TRUE(converges(requestHashes({b})));
  EXPECT_EQ(sub_->subscriberStats().cleared, 0u);  // vLLM's own clear, not a lost one
}

TEST(VllmEndpointTest, FormatAndTopicAreParsedAndValidated) {
  auto e = parseEventEndpoint("tcp://10.0.0.5:5557;format=vllm;topic=kv-events;replay=tcp://10.0.0.5:5558");
  ASSERT_TRUE(e.isOk()) << e.status().toString();
  EXPECT_EQ(e->pub, "tcp://10.0.0.5:5557");
  EXPECT_EQ(e->replay, "tcp://10.0.0.5:5558");
  EXPECT_EQ(e->format, EventFormat::kVllm);
  EXPECT_EQ(e->topic, "kv-events");
  auto again = parseEventEndpoint(formatEventEndpoint(*e));
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->pub, e->pub);
  EXPECT_EQ(again->replay, e->replay);
  EXPECT_EQ(again->format, e->format);
  EXPECT_EQ(again->topic, e->topic);
  EXPECT_EQ(parseEventEndpoint("tcp://h:1").value().format, EventFormat::kTurbine);
  for (const char* bad : {"tcp://h:1;format=sglang", "tcp://h:1;topic=x", "tcp://h:1;replay=", "tcp://h:1;colour=red",
                          "tcp://h:1;vllm", ";replay=tcp://h:2"}) {
    auto r = parseEventEndpoint(bad);
    EXPECT_FALSE(r.isOk()) << bad;
    if (!r.isOk()) {
      EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
    }
  }
  // A vLLM publisher's payloads name no worker: the subscriber must be told.
  ZmqEventPlaneOptions so;
  so.publish = false;
  auto sub = ZmqEventPlane::create(std::move(so));
  ASSERT_TRUE(sub.isOk());
  EXPECT_EQ((*sub)->addPublisher("tcp://127.0.0.1:1;format=vllm", 0).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace turbine::runtime
