#include "bench/workload.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <sstream>

namespace turbine::bench {
namespace {

// Key spaces of prompt segments, so different workload parts never share units by accident.
constexpr uint64_t kTagShared = 1ULL << 56;
constexpr uint64_t kTagUnique = 2ULL << 56;
constexpr uint64_t kTagBlock = 3ULL << 56;
constexpr uint64_t kTagTurn = 4ULL << 56;
constexpr uint64_t kTagSystem = 5ULL << 56;

bool parseNumber(const std::string& s, double& out) {
  try {
    size_t pos = 0;
    out = std::stod(s, &pos);
    return pos == s.size() && std::isfinite(out);
  } catch (...) {
    return false;
  }
}

class SyntheticWorkload : public Workload {
 public:
  explicit SyntheticWorkload(const SyntheticOptions& o) : o_(o), rng_(o.seed) {}

  std::optional<RequestSpec> next() override {
    if (done()) return std::nullopt;
    RequestSpec s;
    s.id = static_cast<uint64_t>(issued_++);
    s.input_tokens = o_.input.sample(rng_);
    s.output_tokens = o_.output.sample(rng_);
    int32_t shared = static_cast<int32_t>(std::lround(o_.shared_prefix * s.input_tokens));
    shared = std::clamp(shared, 0, s.input_tokens);
    if (shared > 0) s.segments.push_back({kTagShared, shared});
    if (s.input_tokens > shared) s.segments.push_back({kTagUnique | s.id, s.input_tokens - shared});
    if (o_.rate > 0) {
      clock_s_ += std::exponential_distribution<double>(o_.rate)(rng_);
      s.arrival_s = clock_s_;
    }
    return s;
  }
  bool done() const override { return o_.requests >= 0 && issued_ >= o_.requests; }
  int64_t total() const override { return o_.requests; }

 private:
  SyntheticOptions o_;
  std::mt19937_64 rng_;
  int64_t issued_ = 0;
  double clock_s_ = 0.0;
};

class TraceWorkload : public Workload {
 public:
  TraceWorkload(std::vector<TraceRecord> records, const TraceWorkloadOptions& o)
      : records_(std::move(records)), o_(o) {
    std::stable_sort(records_.begin(), records_.end(),
                     [](const TraceRecord& a, const TraceRecord& b) {
                       return a.timestamp_ms < b.timestamp_ms;
                     });
    if (o_.max_requests >= 0 && static_cast<size_t>(o_.max_requests) < records_.size()) {
      records_.resize(static_cast<size_t>(o_.max_requests));
    }
    t0_ms_ = records_.empty() ? 0.0 : records_.front().timestamp_ms;
  }

  std::optional<RequestSpec> next() override {
    if (done()) return std::nullopt;
    const TraceRecord& r = records_[pos_];
    RequestSpec s;
    s.id = pos_++;
    s.arrival_s = (r.timestamp_ms - t0_ms_) / 1000.0 * o_.time_scale / o_.rate_scale;
    s.segments = mooncakeSegments(r, s.id);
    s.input_tokens = r.input_length;
    if (o_.max_input_len > 0 && s.input_tokens > o_.max_input_len) {
      truncate(s.segments, o_.max_input_len);
      s.input_tokens = o_.max_input_len;
    }
    s.output_tokens = std::max(1, r.output_length);
    if (o_.max_output_len > 0) s.output_tokens = std::min(s.output_tokens, o_.max_output_len);
    return s;
  }
  bool done() const override { return pos_ >= records_.size(); }
  int64_t total() const override { return static_cast<int64_t>(records_.size()); }

 private:
  static void truncate(std::vector<PromptSegment>& segs, int32_t n) {
    std::vector<PromptSegment> out;
    for (const auto& s : segs) {
      if (n <= 0) break;
      out.push_back({s.key, std::min(s.count, n)});
      n -= out.back().count;
    }
    segs = std::move(out);
  }

  std::vector<TraceRecord> records_;
  TraceWorkloadOptions o_;
  size_t pos_ = 0;
  double t0_ms_ = 0.0;
};

class MultiTurnWorkload : public Workload {
 public:
  MultiTurnWorkload(const MultiTurnOptions& o, const PromptRenderer* renderer)
      : o_(o), renderer_(renderer), rng_(o.seed), users_(static_cast<size_t>(std::max(0, o.users))) {
    for (int32_t u = 0; u < o_.users; ++u) ready_.push_back(u);
    if (o_.system_prompt_tokens > 0) {
      system_ = renderer_->text({{kTagSystem, o_.system_prompt_tokens}});
    }
  }

  std::optional<RequestSpec> next() override {
    if (ready_.empty()) return std::nullopt;
    int32_t u = ready_.front();
    ready_.pop_front();
    User& user = users_[static_cast<size_t>(u)];
    RequestSpec s;
    s.id = static_cast<uint64_t>(issued_++);
    s.user = u;
    s.turn = user.turn;
    s.input_tokens = o_.input.sample(rng_);
    s.output_tokens = o_.output.sample(rng_);
    s.segments = {{kTagTurn | (static_cast<uint64_t>(u) << 24) | static_cast<uint64_t>(user.turn),
                   s.input_tokens}};
    if (!system_.empty()) s.history.push_back({"system", system_});
    s.history.insert(s.history.end(), user.history.begin(), user.history.end());
    return s;
  }
  void onComplete(const RequestSpec& spec, const RequestResult& result) override {
    User& user = users_[static_cast<size_t>(spec.user)];
    user.history.push_back({"user", renderer_->text(spec.segments)});
    // A failed turn still advances the conversation, with an empty reply.
    user.history.push_back({"assistant", result.output_text});
    ++finished_;
    if (++user.turn < o_.turns) ready_.push_back(spec.user);
  }
  bool done() const override { return finished_ >= total(); }
  int64_t total() const override { return static_cast<int64_t>(o_.users) * o_.turns; }
  bool needsOutputText() const override { return true; }

 private:
  struct User {
    int32_t turn = 0;
    std::vector<ChatMessage> history;
  };
  MultiTurnOptions o_;
  const PromptRenderer* renderer_;
  std::mt19937_64 rng_;
  std::vector<User> users_;
  std::deque<int32_t> ready_;
  std::string system_;
  int64_t issued_ = 0;
  int64_t finished_ = 0;
};

}  // namespace

int32_t LengthDist::sample(std::mt19937_64& rng) const {
  double v = a;
  if (kind == Kind::kUniform) {
    v = static_cast<double>(std::uniform_int_distribution<int64_t>(
        static_cast<int64_t>(a), static_cast<int64_t>(b))(rng));
  } else if (kind == Kind::kNormal) {
    v = std::normal_distribution<double>(a, b)(rng);
  }
  return static_cast<int32_t>(std::clamp<double>(std::round(v), 1.0, 1e9));
}

std::string LengthDist::toString() const {
  std::ostringstream s;
  if (kind == Kind::kFixed) s << a;
  if (kind == Kind::kUniform) s << "uniform:" << a << ":" << b;
  if (kind == Kind::kNormal) s << "normal:" << a << ":" << b;
  return s.str();
}

Result<LengthDist> parseLengthDist(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream ss(text);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  auto bad = [&] {
    return invalidArgument("bad length '" + text +
                           "' (want N, fixed:N, uniform:LO:HI or normal:MEAN:STDDEV)");
  };
  if (parts.empty()) return bad();
  std::vector<double> v;
  for (size_t i = (parts.size() > 1 ? 1 : 0); i < parts.size(); ++i) {
    double d;
    if (!parseNumber(parts[i], d) || d < 0) return bad();
    v.push_back(d);
  }
  LengthDist out;
  if (parts.size() == 1 || (parts[0] == "fixed" && v.size() == 1)) {
    if (v.size() != 1 || v[0] < 1) return bad();
    out.a = v[0];
  } else if (parts[0] == "uniform" && v.size() == 2 && v[0] >= 1 && v[1] >= v[0]) {
    out = {LengthDist::Kind::kUniform, v[0], v[1]};
  } else if (parts[0] == "normal" && v.size() == 2 && v[0] >= 1) {
    out = {LengthDist::Kind::kNormal, v[0], v[1]};
  } else {
    return bad();
  }
  return out;
}

std::vector<PromptSegment> mooncakeSegments(const TraceRecord& r, uint64_t request_id) {
  std::vector<PromptSegment> segs;
  int32_t left = r.input_length;
  for (int64_t id : r.hash_ids) {
    if (left <= 0) break;
    int32_t n = std::min(left, kMooncakeBlockTokens);
    segs.push_back({kTagBlock | (static_cast<uint64_t>(id) & ((1ULL << 56) - 1)), n});
    left -= n;
  }
  if (left > 0) segs.push_back({kTagUnique | request_id, left});
  return segs;
}

std::unique_ptr<Workload> makeSyntheticWorkload(const SyntheticOptions& o) {
  return std::make_unique<SyntheticWorkload>(o);
}
std::unique_ptr<Workload> makeTraceWorkload(std::vector<TraceRecord> records,
                                            const TraceWorkloadOptions& o) {
  return std::make_unique<TraceWorkload>(std::move(records), o);
}
std::unique_ptr<Workload> makeMultiTurnWorkload(const MultiTurnOptions& o,
                                                const PromptRenderer* renderer) {
  return std::make_unique<MultiTurnWorkload>(o, renderer);
}

}  // namespace turbine::bench
