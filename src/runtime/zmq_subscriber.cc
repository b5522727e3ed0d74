#include "runtime/zmq_subscriber.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "kv/block_hash.h"
#include "kv/vllm_events.h"
#include "runtime/zmq_codec.h"
#include "runtime/zmq_publisher.h"

namespace turbine::runtime {

struct ZmqSubscriberContext {
  zmq::context_t ctx{1};
};

using Clock = std::chrono::steady_clock;

struct ZmqSubscriber::Remote {
  std::string name;
  EventEndpoints endpoints;
  kv::WorkerId worker = 0;
  zmq::socket_t sub;
  zmq::socket_t dealer;  // empty when the publisher serves no replays
  std::optional<uint64_t> expected;            // next kv frame seq
  bool awaiting = false;                       // a replay/snapshot request is out
  Clock::time_point deadline;
  std::map<uint64_t, std::string> held;        // kv frames that arrived while awaiting
  bool probe_due = false;                      // kv frames came since the last tail probe
  Clock::time_point last_kv;                   // when the last kv frame came
  std::unique_ptr<kv::VllmBlockTranslator> vllm;  // vLLM publishers only
  bool vllm_replayed = false;                  // the vLLM replay being answered sent a batch
  bool joining = false;                        // the request out is the join's
};

namespace {

// Receives every frame of one message; empty when nothing is waiting.
std::vector<std::string> recvFrames(zmq::socket_t& s) {
  std::vector<std::string> frames;
  zmq::multipart_t msg;
  if (!msg.recv(s, ZMQ_DONTWAIT)) return frames;
  while (!msg.empty()) frames.push_back(msg.popstr());
  return frames;
}

}  // namespace

ZmqSubscriber::ZmqSubscriber(ZmqSubscriberOptions options, Deliver deliver)
    : options_(std::move(options)), deliver_(std::move(deliver)),
      zmq_(std::make_unique<ZmqSubscriberContext>()) {
  thread_ = std::thread([this] { run(); });
}

ZmqSubscriber::~ZmqSubscriber() { close(); }

void ZmqSubscriber::close() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Status ZmqSubscriber::addPublisher(const std::string& event_endpoint, kv::WorkerId worker) {
  PublisherInfo info;
  info.worker = worker;
  return addPublisher(event_endpoint, info);
}

Status ZmqSubscriber::addPublisher(const std::string& event_endpoint, const PublisherInfo& info) {
  Result<EventEndpoints> parsed = parseEventEndpoint(event_endpoint);
  if (!parsed) return parsed.status();
  if (parsed->format == EventFormat::kVllm && info.worker == 0) {
    return invalidArgument("event plane: vLLM publisher '" + event_endpoint + "' needs its worker id");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (std::find(names_.begin(), names_.end(), event_endpoint) != names_.end()) {
    return Status(StatusCode::kAlreadyExists, "event plane: already subscribed to '" + event_endpoint + "'");
  }
  names_.push_back(event_endpoint);
  commands_.push_back({true, event_endpoint, info});
  return Status::ok();
}

void ZmqSubscriber::removePublisher(const std::string& event_endpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(names_.begin(), names_.end(), event_endpoint);
  if (it == names_.end()) return;
  names_.erase(it);
  commands_.push_back({false, event_endpoint, {}});
}

size_t ZmqSubscriber::publishers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return names_.size();
}

ZmqSubscriberStats ZmqSubscriber::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void ZmqSubscriber::applyCommands() {
  std::deque<Command> commands;
  {
    std::lock_guard<std::mutex> lock(mu_);
    commands.swap(commands_);
  }
  for (auto& [add, name, info] : commands) {
    auto it = std::find_if(remotes_.begin(), remotes_.end(), [&](const auto& r) { return r->name == name; });
    if (!add) {
      if (it != remotes_.end()) remotes_.erase(it);
      continue;
    }
    auto r = std::make_unique<Remote>();
    r->name = name;
    r->endpoints = *parseEventEndpoint(name);  // validated in addPublisher
    r->worker = info.worker;
    const bool vllm = r->endpoints.format == EventFormat::kVllm;
    if (vllm) r->vllm = std::make_unique<kv::VllmBlockTranslator>(kv::rootHash(info.model_id, ""), info.block_size);
    try {
      r->sub = zmq::socket_t(zmq_->ctx, zmq::socket_type::sub);
      r->sub.set(zmq::sockopt::linger, 0);
      r->sub.set(zmq::sockopt::rcvhwm, 0);
      if (vllm) {
        r->sub.set(zmq::sockopt::subscribe, r->endpoints.topic);
      } else {
        r->sub.set(zmq::sockopt::subscribe, "kv");
        r->sub.set(zmq::sockopt::subscribe, "load");
      }
      r->sub.connect(r->endpoints.pub);
      if (!r->endpoints.replay.empty()) {
        r->dealer = zmq::socket_t(zmq_->ctx, zmq::socket_type::dealer);
        r->dealer.set(zmq::sockopt::linger, 0);
        r->dealer.connect(r->endpoints.replay);
      }
    } catch (const zmq::error_t&) {
      continue;  // a malformed transport address: nothing to receive from
    }
    if (r->dealer && options_.snapshot_on_connect) {
      requestReplay(*r, vllm ? "replay" : "snapshot", 0);
      r->joining = true;
    }
    remotes_.push_back(std::move(r));
  }
}

void ZmqSubscriber::run() {
  std::vector<zmq::pollitem_t> items;
  while (!stop_) {
    applyCommands();
    items.clear();
    for (auto& r : remotes_) {
      items.push_back({r->sub.handle(), 0, ZMQ_POLLIN, 0});
      if (r->dealer) items.push_back({r->dealer.handle(), 0, ZMQ_POLLIN, 0});
    }
    try {
      if (items.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options_.poll_interval_ms));
        continue;
      }
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(options_.poll_interval_ms));
      size_t i = 0;
      for (auto& r : remotes_) {
        const bool sub_ready = items[i++].revents & ZMQ_POLLIN;
        const bool dealer_ready = r->dealer && (items[i++].revents & ZMQ_POLLIN);
        // Drain what is there, a bounded amount per round so no publisher starves the others.
        for (int n = 0; sub_ready && n < 1024; ++n) {
          std::vector<std::string> frames = recvFrames(r->sub);
          if (frames.empty()) break;
          onFrame(*r, frames);
        }
        while (dealer_ready) {
          std::vector<std::string> frames = recvFrames(r->dealer);
          if (frames.empty()) break;
          if (r->vllm) onVllmReply(*r, frames);
          else onReply(*r, frames);
        }
      }
    } catch (const zmq::error_t&) {
      // A socket failed under us (context shutting down): try again next round.
    }
    checkTimeouts();
    probeTails();
  }
  remotes_.clear();
}

void ZmqSubscriber::onFrame(Remote& r, std::vector<std::string>& frames) {
  if (frames.size() != 3) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.decode_errors;
    return;
  }
  // A vLLM publisher's frames are all KV batches, on whatever topic it was told to use.
  Result<Topic> topic = r.vllm ? Result<Topic>(Topic::kKv) : zmq_codec::parseTopic(frames[0]);
  Result<uint64_t> seq = zmq_codec::decodeSeq(frames[1]);
  if (!topic || !seq) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.decode_errors;
    return;
  }
  if (options_.drop_for_test && options_.drop_for_test(*topic, *seq)) return;
  if (*topic == Topic::kKv) {
    acceptKv(r, *seq, frames[2]);
    return;
  }
  Result<EventPayload> payload = zmq_codec::decodePayload(*topic, frames[2]);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++(payload ? stats_.delivered : stats_.decode_errors);
  }
  if (payload) deliver_(*payload);
}

void ZmqSubscriber::acceptKv(Remote& r, uint64_t seq, const std::string& bytes) {
  if (r.awaiting) {
    r.held.emplace(seq, bytes);
    return;
  }
  if (r.expected && seq < *r.expected) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.duplicates;
    return;
  }
  if (r.expected && seq > *r.expected) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.gaps;
    }
    if (r.dealer) {
      r.held.emplace(seq, bytes);
      requestReplay(r, "replay", *r.expected);
      return;
    }
    deliverCleared(r);  // nothing can fill the gap: forget the worker's blocks, go on
  }
  r.expected = seq + 1;
  r.probe_due = true;
  r.last_kv = Clock::now();
  deliverKv(r, seq, bytes);
}

void ZmqSubscriber::probeTails() {
  if (options_.tail_probe_ms <= 0) return;
  const auto now = Clock::now();
  for (auto& r : remotes_) {
    if (!r->dealer || r->awaiting || !r->expected || !r->probe_due) continue;
    if (now - r->last_kv < std::chrono::milliseconds(options_.tail_probe_ms)) continue;
    r->probe_due = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.tail_probes;
    }
    requestReplay(*r, "replay", *r->expected);
  }
}

void ZmqSubscriber::drainHeld(Remote& r) {
  while (!r.awaiting && !r.held.empty()) {
    auto node = r.held.extract(r.held.begin());
    acceptKv(r, node.key(), node.mapped());
  }
}

void ZmqSubscriber::requestReplay(Remote& r, const char* cmd, uint64_t from) {
  zmq::multipart_t req;
  if (r.vllm) {
    req.addstr("");  // the envelope delimiter vLLM's ROUTER expects from a REQ socket
    r.vllm_replayed = false;
  } else {
    req.addstr(cmd);
    req.addstr("kv");
  }
  req.addstr(zmq_codec::encodeSeq(from));
  try {
    req.send(r.dealer, ZMQ_DONTWAIT);
  } catch (const zmq::error_t&) {
    // Treated like an unanswered request: the timeout clears the worker's entries.
  }
  r.awaiting = true;
  r.deadline = Clock::now() + std::chrono::milliseconds(options_.replay_timeout_ms);
}

// frames: ["replay", topic, (seq, payload)...] | ["snapshot", topic, next_seq, payload]
//         | ["gone", topic, next_seq].
void ZmqSubscriber::onReply(Remote& r, std::vector<std::string>& frames) {
  if (!r.awaiting || frames.size() < 2 || frames[1] != "kv") return;
  const std::string& kind = frames[0];
  r.awaiting = false;
  if (kind == "replay") {
    for (size_t i = 2; i + 1 < frames.size(); i += 2) {
      Result<uint64_t> seq = zmq_codec::decodeSeq(frames[i]);
      if (seq) r.held.emplace(*seq, std::move(frames[i + 1]));
    }
    if (frames.size() > 2) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.replays;
    }
  } else if (frames.size() >= 3) {
    Result<uint64_t> next = zmq_codec::decodeSeq(frames[2]);
    const bool snapshot = kind == "snapshot" && frames.size() >= 4 && !frames[3].empty();
    if (kind == "snapshot") {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.snapshots;  // counted before delivery, so a callback sees it
    }
    if (snapshot) {
      deliverKv(r, next ? *next : 0, frames[3]);  // a Turbine snapshot names its own seq
    } else if (kind != "snapshot" || r.expected) {
      deliverCleared(r);  // "gone", or an empty snapshot after we had seen this worker
    }
    if (next) r.expected = *next;
  }
  drainHeld(r);
  endJoin(r);  // after what the answer delivered
}

// frames: ["", seq, payload] per replayed batch, then ["", -1, ""].
void ZmqSubscriber::onVllmReply(Remote& r, std::vector<std::string>& frames) {
  if (!r.awaiting || frames.size() != 3 || !frames[0].empty()) return;
  if (!frames[2].empty()) {
    Result<uint64_t> seq = zmq_codec::decodeSeq(frames[1]);
    if (seq) {
      r.held.emplace(*seq, std::move(frames[2]));
      if (!r.vllm_replayed) {
        r.vllm_replayed = true;
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.replays;
      }
    }
    return;
  }
  r.awaiting = false;
  if (!r.expected) {
    // Joined (or lost track): nothing of this worker is indexed; start from the oldest batch
    // there is, or from 0 when the publisher has published nothing yet.
    r.expected = r.held.empty() ? 0 : r.held.begin()->first;
  } else if (!r.held.empty() && r.held.begin()->first > *r.expected) {
    deliverCleared(r);  // the publisher's buffer no longer has what was lost
    r.expected = r.held.begin()->first;
  }
  drainHeld(r);
  endJoin(r);
}

void ZmqSubscriber::endJoin(Remote& r) {
  if (!r.joining) return;
  r.joining = false;
  // The join's answer came on the replay socket, which connects sooner than the SUB socket's
  // subscription takes effect: what the publisher sent in between is lost, and with nothing
  // after it no gap would show. Probe the tail once, tail_probe_ms after joining.
  r.probe_due = true;
  r.last_kv = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.joins;
}

void ZmqSubscriber::checkTimeouts() {
  const auto now = Clock::now();
  for (auto& r : remotes_) {
    if (!r->awaiting || now < r->deadline) continue;
    r->awaiting = false;
    endJoin(*r);
    if (r->expected) deliverCleared(*r);  // a join timing out had nothing to forget
    r->expected.reset();                  // go on from the first frame held or received
    drainHeld(*r);
  }
}

void ZmqSubscriber::deliverKv(Remote& r, uint64_t seq, const std::string& bytes) {
  if (r.vllm) {
    Result<kv::VllmEventBatch> batch = kv::decodeVllmEventBatch(bytes);
    kv::KvEventMessage msg;
    if (batch) {
      const uint64_t dropped = r.vllm->stats().blocks_dropped;
      msg = r.vllm->translate(*batch, r.worker, seq);
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.delivered;
      stats_.vllm_blocks_dropped += r.vllm->stats().blocks_dropped - dropped;
    } else {
      // A batch that cannot be read is lost work: forget the worker's blocks (the next ones
      // may hang from what it stored) and go on.
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.decode_errors;
      }
      deliverCleared(r);
      return;
    }
    deliver_(EventPayload(std::move(msg)));
    return;
  }
  Result<kv::KvEventMessage> msg = zmq_codec::decodeKvMessage(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++(msg ? stats_.delivered : stats_.decode_errors);
  }
  if (!msg) return;
  if (r.worker == 0) r.worker = msg->worker_id;
  deliver_(EventPayload(std::move(msg).value()));
}

void ZmqSubscriber::deliverCleared(Remote& r) {
  if (r.worker == 0) return;  // never saw this worker's id: nothing of it is indexed
  kv::KvEventMessage msg;
  msg.worker_id = r.worker;
  msg.seq = 0;
  msg.events.emplace_back(kv::AllCleared{});
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.cleared;
  }
  deliver_(EventPayload(std::move(msg)));
}

}  // namespace turbine::runtime
