#include "frontend/fake_backend.h"

#include <pthread.h>

#include <algorithm>

namespace turbine::frontend {
namespace {

// Returns the length of the longest prefix of `s` that does not end inside a UTF-8 sequence.
size_t completeUtf8Prefix(const std::string& s) {
  size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

class ByteDetokenizer : public IncrementalDetokenizer {
 public:
  std::string push(int32_t id) override {
    if (id < 0 || id > 255) return {};
    pending_.push_back(static_cast<char>(id));
    size_t k = completeUtf8Prefix(pending_);
    std::string out = pending_.substr(0, k);
    pending_.erase(0, k);
    return out;
  }
  std::string flush() override {
    std::string out;
    out.swap(pending_);
    return out;
  }

 private:
  std::string pending_;
};

}  // namespace

FakeBackend::FakeBackend(FakeBackendOptions options) : options_(std::move(options)) {
  if (options_.script.empty()) options_.script = " ";
  script_ids_ = tokenize(options_.model, options_.script, false).value();
  interval_ns_ = std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::nanoseconds>(options_.token_interval).count());
  int64_t slots = 1;
  if (options_.phases == FakePhases::kStaggered) {
    slots = std::clamp<int64_t>(options_.phase_slots, 1, std::max<int64_t>(1, interval_ns_ / 1000));
  }
  slots_.resize(static_cast<size_t>(slots));
  start_ = Clock::now();
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), options_.thread_name.substr(0, 15).c_str());
    run();
  });
}

FakeBackend::~FakeBackend() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::vector<ModelCard> FakeBackend::models() const {
  ModelCard card;
  card.id = options_.model;
  card.created = 1700000000;
  card.max_model_len = options_.max_model_len;
  card.vocab_size = kVocabSize + static_cast<int32_t>(options_.special_tokens.size());
  return {card};
}

Result<std::string> FakeBackend::renderChat(const std::string&, const std::vector<ChatMessage>& messages,
                                            const ChatTemplateArgs& args) {
  std::string out;
  if (!args.tools.is_null()) out += "<|tools|>" + args.tools.dump() + "\n";
  if (!args.extra.empty()) out += "<|context|>" + args.extra.dump() + "\n";
  for (const auto& m : messages) {
    if (m.content == "RAISE_EXCEPTION") {
      return invalidArgument("Conversation roles must alternate user/assistant/user/assistant/...");
    }
    out += "<|" + m.role + "|>";
    if (m.tool_call_id) out += "[" + *m.tool_call_id + "]";
    out += m.content;
    if (!m.tool_calls.is_null()) out += m.tool_calls.dump();
    out += "\n";
  }
  if (args.add_generation_prompt) out += "<|assistant|>";
  return out;
}

Result<std::vector<int32_t>> FakeBackend::tokenize(const std::string&, const std::string& text,
                                                   bool add_special_tokens) {
  std::vector<int32_t> ids;
  ids.reserve(text.size() + 1);
  if (add_special_tokens) ids.push_back(kBos);
  for (size_t i = 0; i < text.size();) {
    size_t k = 0;
    while (k < options_.special_tokens.size() && !std::string_view(text).substr(i).starts_with(options_.special_tokens[k])) ++k;
    if (k < options_.special_tokens.size()) {
      ids.push_back(kVocabSize + static_cast<int32_t>(k));
      i += options_.special_tokens[k].size();
    } else {
      ids.push_back(static_cast<unsigned char>(text[i++]));
    }
  }
  return ids;
}

Result<std::string> FakeBackend::detokenize(const std::string&, const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= kVocabSize + static_cast<int32_t>(options_.special_tokens.size())) {
      return invalidArgument("token id " + std::to_string(id) + " is out of range");
    }
    if (id < 256) out.push_back(static_cast<char>(id));
    if (id >= kVocabSize) out += options_.special_tokens[static_cast<size_t>(id - kVocabSize)];
  }
  return out;
}

std::unique_ptr<IncrementalDetokenizer> FakeBackend::newDetokenizer(const std::string&) {
  return std::make_unique<ByteDetokenizer>();
}

std::string FakeBackend::tokenPiece(const std::string&, int32_t id) {
  if (id == kEos) return "</s>";
  if (id == kBos) return "<s>";
  if (id >= kVocabSize && id - kVocabSize < static_cast<int32_t>(options_.special_tokens.size())) {
    return options_.special_tokens[static_cast<size_t>(id - kVocabSize)];
  }
  if (id < 0 || id > 255) return {};
  return std::string(1, static_cast<char>(id));
}

Status FakeBackend::generate(GenerateRequest request, ChunkSink sink) {
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.unavailable) return unavailable("fake backend: no worker available");
  size_t running = activeCount();
  if (options_.max_running >= 0 && static_cast<int64_t>(running) >= options_.max_running) {
    return resourceExhausted("fake backend: queue is full (" + std::to_string(running) + " running)");
  }
  received_.push_back(request);
  Active a;
  a.pos = static_cast<size_t>(request.sampling.seed.value_or(0)) % script_ids_.size();
  a.request = std::move(request);
  a.sink = std::move(sink);
  slots_[admitted_++ % slots_.size()].push_back(std::move(a));
  cv_.notify_all();  // the producer re-plans its next wake-up
  return Status::ok();
}

void FakeBackend::abort(const std::string& request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& slot : slots_) {
    for (auto& a : slot) {
      if (a.request.request_id == request_id) a.aborted = true;
    }
  }
  aborted_.push_back(request_id);
  cv_.notify_all();
}

bool FakeBackend::step(Active& a, GenerationChunk* chunk) {
  if (a.first) {
    chunk->cached_tokens = options_.cached_tokens;
    a.first = false;
    if (const int32_t k = a.request.sampling.prompt_logprobs; k >= 0) {
      // Made-up scores of prompt tokens 1..n-1: logprob -(i % 3 + 1) / 2, rank i % 5 + 1, the
      // top k the next byte values.
      chunk->prompt_logprobs.emplace();
      const auto& prompt = a.request.prompt_token_ids;
      for (size_t i = 1; i < prompt.size(); ++i) {
        TokenLogprob lp;
        lp.token_id = prompt[i];
        lp.logprob = -0.5f * static_cast<float>(i % 3 + 1);
        lp.rank = static_cast<int32_t>(i % 5) + 1;
        for (int32_t j = 0; j < k; ++j) lp.top.emplace_back((prompt[i] + j + 1) % 256, -0.1f * static_cast<float>(j + 1));
        chunk->prompt_logprobs->push_back(std::move(lp));
      }
    }
  }
  if (a.aborted) {
    chunk->finish = FinishReason::kAbort;
    return true;
  }
  const auto& stop = a.request.stop;
  bool script_done = options_.eos_after_script && a.produced >= static_cast<int32_t>(script_ids_.size());
  int32_t token = (script_done && !stop.ignore_eos) ? kEos : script_ids_[a.pos++ % script_ids_.size()];
  bool is_stop_token = token == kEos ||
      std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(), token) != stop.stop_token_ids.end();
  if (is_stop_token) {
    chunk->finish = FinishReason::kStop;
    return true;
  }
  ++a.produced;
  chunk->token_ids.push_back(token);
  int32_t k = a.request.sampling.logprobs;
  if (k >= 0) {
    TokenLogprob lp;
    lp.token_id = token;
    lp.logprob = -0.25f * static_cast<float>(1 + a.produced % 4);
    for (int32_t j = 0; j < k; ++j) {
      lp.top.emplace_back(j == 0 ? token : (token + j) % 256, lp.logprob - static_cast<float>(j));
    }
    chunk->logprobs.push_back(std::move(lp));
  }
  if (a.produced >= stop.max_tokens) {
    chunk->finish = FinishReason::kLength;
    return true;
  }
  return false;
}

FakeBackend::Clock::time_point FakeBackend::tickTime(int64_t tick) const {
  auto slots = static_cast<int64_t>(slots_.size());
  return start_ + std::chrono::nanoseconds(tick * interval_ns_ / slots);
}

int64_t FakeBackend::nextBusyTick(int64_t from) const {
  auto slots = static_cast<int64_t>(slots_.size());
  for (int64_t t = from; t < from + slots; ++t) {
    if (!slots_[static_cast<size_t>(t % slots)].empty()) return t;
  }
  return -1;
}

size_t FakeBackend::activeCount() const {
  size_t n = 0;
  for (const auto& slot : slots_) n += slot.size();
  return n;
}

void FakeBackend::tickSlot(size_t slot, std::vector<std::pair<ChunkSink, GenerationChunk>>* out) {
  auto tick = static_cast<uint32_t>(tick_times_.size());
  auto& active = slots_[slot];
  for (auto it = active.begin(); it != active.end();) {
    GenerationChunk chunk;
    bool last = step(*it, &chunk);
    if (options_.record_emit_times && !chunk.token_ids.empty()) it->emit_ticks.push_back(tick);
    if (last && options_.record_emit_times) emit_ticks_[it->request.request_id] = std::move(it->emit_ticks);
    out->emplace_back(last ? std::move(it->sink) : it->sink, std::move(chunk));
    it = last ? active.erase(it) : it + 1;
  }
  if (options_.record_emit_times) tick_times_.push_back(Clock::now());
}

// Wakes at tickTime(t) for each tick t whose slot holds a request; sleeps while none is running
// (a new request wakes it to re-plan). Sinks run outside the lock.
void FakeBackend::run() {
  auto slots = static_cast<int64_t>(slots_.size());
  auto currentTick = [&] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count() * slots / interval_ns_;
  };
  std::vector<std::pair<ChunkSink, GenerationChunk>> out;
  int64_t next = 1;  // the first tick not yet served
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    uint64_t seen = admitted_;
    auto woken = [&] { return stop_ || admitted_ != seen; };
    int64_t tick = nextBusyTick(next);
    if (tick < 0) {  // idle: wait for a request, then start at the tick after now (no catch-up)
      cv_.wait(lock, woken);
      next = currentTick() + 1;
      continue;
    }
    if (cv_.wait_until(lock, tickTime(tick), woken)) continue;  // stopping, or re-plan for a new request
    tickSlot(static_cast<size_t>(tick % slots), &out);
    next = tick + 1;
    int64_t now_tick = currentTick();
    if (next < now_tick - slots) next = now_tick;  // stalled over an interval: skip, don't burst
    lock.unlock();
    for (auto& [sink, chunk] : out) sink(std::move(chunk));
    out.clear();
    lock.lock();
  }
}

BackendStats FakeBackend::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  BackendStats s;
  s.running = static_cast<int64_t>(activeCount());
  s.kv_blocks_total = 1000;
  s.kv_blocks_used = s.running * 2;
  s.prefix_cache_hit_rate = options_.cached_tokens > 0 ? 0.5 : 0.0;
  return s;
}

void FakeBackend::setMaxRunning(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.max_running = n;
}

void FakeBackend::setUnavailable(bool v) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.unavailable = v;
}

std::vector<std::string> FakeBackend::aborted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return aborted_;
}

bool FakeBackend::waitAborted(const std::string& id, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    return std::find(aborted_.begin(), aborted_.end(), id) != aborted_.end();
  });
}

std::vector<GenerateRequest> FakeBackend::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

size_t FakeBackend::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return activeCount();
}

std::vector<std::chrono::steady_clock::time_point> FakeBackend::emitTimes(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::chrono::steady_clock::time_point> out;
  const std::vector<uint32_t>* ticks = nullptr;
  if (auto it = emit_ticks_.find(id); it != emit_ticks_.end()) ticks = &it->second;
  for (const auto& slot : slots_) {
    for (const auto& a : slot) {
      if (ticks == nullptr && a.request.request_id == id) ticks = &a.emit_ticks;
    }
  }
  if (ticks == nullptr) return out;
  for (uint32_t t : *ticks) out.push_back(tick_times_[t]);
  return out;
}

}  // namespace turbine::frontend
