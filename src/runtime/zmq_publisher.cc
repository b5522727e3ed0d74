#include "runtime/zmq_publisher.h"

#include <chrono>
#include <vector>

#include "runtime/zmq_codec.h"

namespace turbine::runtime {
namespace {

constexpr std::string_view kReplayTag = ";replay=";

std::string frameSeq(uint64_t seq) { return zmq_codec::encodeSeq(seq); }

}  // namespace

std::string formatEventEndpoint(const EventEndpoints& endpoints) {
  std::string out = endpoints.pub;
  if (!endpoints.replay.empty()) out += std::string(kReplayTag) + endpoints.replay;
  if (endpoints.format == EventFormat::kVllm) {
    out += ";format=vllm";
    if (!endpoints.topic.empty()) out += ";topic=" + endpoints.topic;
  }
  return out;
}

Result<EventEndpoints> parseEventEndpoint(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return invalidArgument("event endpoint '" + text + "': " + why +
                           "; expected 'tcp://HOST:PORT[;replay=tcp://HOST:PORT][;format=vllm][;topic=NAME]'");
  };
  EventEndpoints out;
  size_t at = text.find(';');
  out.pub = text.substr(0, at);
  if (out.pub.empty()) return bad("no publisher address");
  bool topic_given = false;
  while (at != std::string::npos) {
    const size_t next = text.find(';', at + 1);
    const std::string part = text.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    at = next;
    const size_t eq = part.find('=');
    const std::string key = part.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (eq == std::string::npos) return bad("part '" + part + "' is not KEY=VALUE");
    if (key == "replay") {
      if (value.empty()) return bad("empty replay address");
      out.replay = value;
    } else if (key == "format") {
      if (value == "vllm") out.format = EventFormat::kVllm;
      else if (value == "turbine") out.format = EventFormat::kTurbine;
      else return bad("unknown format '" + value + "'");
    } else if (key == "topic") {
      out.topic = value;
      topic_given = true;
    } else {
      return bad("unknown part '" + key + "'");
    }
  }
  if (topic_given && out.format != EventFormat::kVllm) return bad("topic is for format=vllm only");
  return out;
}

ZmqPublisher::ZmqPublisher(const ZmqPublisherOptions& options)
    : options_(options), ctx_(1), pub_(ctx_, zmq::socket_type::pub) {
  if (options_.replay_buffer == 0) options_.replay_buffer = 1;
}

Result<std::unique_ptr<ZmqPublisher>> ZmqPublisher::start(const ZmqPublisherOptions& options) {
  std::unique_ptr<ZmqPublisher> p(new ZmqPublisher(options));
  TURBINE_RETURN_IF_ERROR(p->bind());
  if (!options.replay_bind.empty()) {
    p->thread_ = std::thread([raw = p.get()] { raw->serveReplays(); });
  }
  return p;
}

Status ZmqPublisher::bind() {
  const std::string* what = &options_.bind;
  try {
    pub_.set(zmq::sockopt::sndhwm, options_.send_hwm);
    pub_.set(zmq::sockopt::linger, 0);
    pub_.bind(options_.bind);
    endpoints_.pub = pub_.get(zmq::sockopt::last_endpoint);
    if (!options_.replay_bind.empty()) {
      what = &options_.replay_bind;
      replay_ = zmq::socket_t(ctx_, zmq::socket_type::router);
      replay_.set(zmq::sockopt::linger, 0);
      replay_.bind(options_.replay_bind);
      endpoints_.replay = replay_.get(zmq::sockopt::last_endpoint);
    }
  } catch (const zmq::error_t& e) {
    return unavailable("event plane: cannot bind '" + *what + "': " + e.what());
  }
  return Status::ok();
}

ZmqPublisher::~ZmqPublisher() { close(); }

void ZmqPublisher::close() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  pub_.close();
  if (replay_) replay_.close();
}

std::string ZmqPublisher::endpoint() const {
  std::lock_guard<std::mutex> lock(mu_);
  return formatEventEndpoint(endpoints_);
}

Status ZmqPublisher::publish(const EventPayload& payload) {
  const Topic topic = topicOf(payload);
  std::string bytes = zmq_codec::encodePayload(payload);
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return unavailable("event plane: publisher closed");
  const uint64_t seq = next_seq_[static_cast<int>(topic)]++;
  try {
    const std::string_view name = topicName(topic);
    pub_.send(zmq::buffer(name.data(), name.size()), zmq::send_flags::sndmore);
    pub_.send(zmq::buffer(frameSeq(seq)), zmq::send_flags::sndmore);
    pub_.send(zmq::buffer(bytes), zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    return unavailable(std::string("event plane: send failed: ") + e.what());
  }
  if (topic == Topic::kKv) {
    mirror(std::get<kv::KvEventMessage>(payload));
    buffer_.emplace_back(seq, std::move(bytes));
    while (buffer_.size() > options_.replay_buffer) buffer_.pop_front();
  }
  return Status::ok();
}

void ZmqPublisher::mirror(const kv::KvEventMessage& msg) {
  worker_id_ = msg.worker_id;
  last_kv_seq_ = msg.seq;
  for (const kv::KvEvent& event : msg.events) {
    if (const auto* s = std::get_if<kv::BlockStored>(&event)) {
      ParentMap& tier = blocks_[static_cast<int>(s->tier)];
      std::optional<uint64_t> parent = s->parent_hash;
      for (kv::BlockHash h : s->block_hashes) {
        tier[h] = parent;
        parent = h;
      }
    } else if (const auto* r = std::get_if<kv::BlockRemoved>(&event)) {
      ParentMap& tier = blocks_[static_cast<int>(r->tier)];
      for (kv::BlockHash h : r->block_hashes) tier.erase(h);
    } else {
      for (ParentMap& tier : blocks_) tier.clear();
    }
  }
}

size_t ZmqPublisher::mirroredBlocks() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const ParentMap& tier : blocks_) n += tier.size();
  return n;
}

// One message: cleared, then one stored event per block (its own parent link).
std::string ZmqPublisher::snapshotLocked() const {
  if (!worker_id_) return {};
  kv::KvEventMessage msg;
  msg.worker_id = *worker_id_;
  msg.seq = last_kv_seq_.value_or(0);
  msg.events.emplace_back(kv::AllCleared{});
  for (int t = 0; t < kv::kNumTiers; ++t) {
    for (const auto& [hash, parent] : blocks_[t]) {
      msg.events.emplace_back(kv::BlockStored{{hash}, parent, static_cast<kv::Tier>(t)});
    }
  }
  return zmq_codec::encodeKvMessage(msg);
}

void ZmqPublisher::serveReplays() {
  while (!stop_) {
    zmq::pollitem_t item{replay_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::multipart_t request;
      if (!request.recv(replay_)) continue;
      answer(request);
    } catch (const zmq::error_t&) {
      if (stop_) return;
    }
  }
}

// request: [identity, cmd, topic, from_seq(8)].
void ZmqPublisher::answer(zmq::multipart_t& request) {
  if (request.size() < 3) return;
  zmq::multipart_t reply;
  reply.add(request.pop());  // identity
  const std::string cmd = request.popstr();
  Result<Topic> topic = zmq_codec::parseTopic(request.popstr());
  if (!topic) return;
  uint64_t from = 0;
  if (!request.empty()) {
    Result<uint64_t> seq = zmq_codec::decodeSeq(request.popstr());
    if (seq) from = *seq;
  }
  const std::string name(topicName(*topic));
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t next = next_seq_[static_cast<int>(*topic)];
    const bool have = !buffer_.empty() ? buffer_.front().first <= from : from >= next;
    if (*topic == Topic::kLoad) {
      reply.addstr("gone"), reply.addstr(name), reply.addstr(frameSeq(next));
    } else if (cmd == "replay" && have) {
      reply.addstr("replay"), reply.addstr(name);
      for (const auto& [seq, bytes] : buffer_) {
        if (seq < from) continue;
        reply.addstr(frameSeq(seq));
        reply.addstr(bytes);
      }
      ++replays_served_;
    } else {
      reply.addstr("snapshot"), reply.addstr(name), reply.addstr(frameSeq(next));
      reply.addstr(snapshotLocked());
      ++snapshots_served_;
    }
  }
  reply.send(replay_);
}

}  // namespace turbine::runtime
