#include "engine/scheduler.h"

#include <algorithm>
#include <cstring>
#include <chrono>
#include <cmath>
#include <random>
#include <string>

namespace turbine::engine {

enum class SeqState { kHeld, kWaiting, kRunning, kFinished };

struct Scheduler::Sequence {
  Group* group = nullptr;
  int32_t index = 0;
  uint64_t order = 0;  // smaller = older; the newest running sequence is preempted first
  std::vector<int32_t> tokens;  // prompt then generated tokens
  int32_t num_prompt = 0;
  int32_t num_computed = 0;     // tokens whose KV is in `blocks`
  std::vector<BlockId> blocks;
  std::vector<kv::BlockHash> hashes;  // of full blocks of `tokens`, grown lazily
  int32_t num_committed = 0;          // leading blocks registered in the prefix cache
  SeqState state = SeqState::kHeld;
  SamplerRng rng;
  std::unique_ptr<structured::Matcher> matcher;  // guided requests: where the output stands
};

struct Scheduler::Group {
  Request request;
  OutputCallback callback;
  kv::BlockHash root = 0;
  int32_t max_tokens = 0;
  int32_t cached_tokens = 0;
  bool admitted = false;
  bool siblings_released = false;
  int32_t num_live = 0;
  std::vector<int32_t> suppress;  // EOS + stop ids, banned while under min_tokens
  std::shared_ptr<GuidedGrammar> guided;  // the constraint, when the request has one
  std::vector<std::unique_ptr<Sequence>> seqs;
  // Request::kv_import, until the first admission: its blocks are the prompt's blocks
  // [import_at, import_at + hashes.size()).
  std::shared_ptr<const KvBlocks> import;
  int32_t import_at = 0;
  int64_t import_used = 0;  // of its blocks, written into the pool
  // sampling.prompt_logprobs: the scores of prompt tokens 1..size() so far, until delivered.
  std::vector<PositionLogprobs> prompt_lp;
  bool prompt_lp_delivered = false;
};

namespace {

int32_t ceilDiv(int32_t a, int32_t b) { return (a + b - 1) / b; }

bool finiteIn(float v, float lo, float hi) { return std::isfinite(v) && v >= lo && v <= hi; }

Status checkTokens(const std::vector<int32_t>& ids, int32_t vocab, const char* field) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      return invalidArgument(std::string(field) + "[" + std::to_string(i) + "] = " +
                             std::to_string(ids[i]) + " is outside the vocabulary [0, " +
                             std::to_string(vocab) + ")");
    }
  }
  return Status::ok();
}

Status checkSampling(const SamplingParams& s, int32_t vocab) {
  if (!finiteIn(s.temperature, 0.0f, 1e6f)) return invalidArgument("temperature must be >= 0");
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) return invalidArgument("top_p must be in (0, 1]");
  if (s.top_k < -1) return invalidArgument("top_k must be -1, 0 (off) or positive");
  if (!finiteIn(s.min_p, 0.0f, 1.0f)) return invalidArgument("min_p must be in [0, 1]");
  if (!finiteIn(s.repetition_penalty, 1e-6f, 1e6f))
    return invalidArgument("repetition_penalty must be > 0");
  if (!finiteIn(s.presence_penalty, -2.0f, 2.0f))
    return invalidArgument("presence_penalty must be in [-2, 2]");
  if (!finiteIn(s.frequency_penalty, -2.0f, 2.0f))
    return invalidArgument("frequency_penalty must be in [-2, 2]");
  for (const auto& [id, bias] : s.logit_bias) {
    if (id < 0 || id >= vocab)
      return invalidArgument("logit_bias token " + std::to_string(id) + " outside the vocabulary");
    if (!finiteIn(bias, -100.0f, 100.0f))
      return invalidArgument("logit_bias for token " + std::to_string(id) +
                             " must be in [-100, 100]");
  }
  if (s.top_logprobs < 0 || s.top_logprobs > kMaxTopLogprobs)
    return invalidArgument("top_logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) + "]");
  if (s.prompt_logprobs && (*s.prompt_logprobs < 0 || *s.prompt_logprobs > kMaxTopLogprobs))
    return invalidArgument("prompt_logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) + "]");
  return Status::ok();
}

}  // namespace

Status validateRequest(const Request& r, const RequestLimits& lim) {
  if (r.request_id.empty()) return invalidArgument("request_id is empty");
  if (r.token_ids.empty()) return invalidArgument("prompt (token_ids) is empty");
  TURBINE_RETURN_IF_ERROR(checkTokens(r.token_ids, lim.vocab_size, "token_ids"));
  TURBINE_RETURN_IF_ERROR(checkTokens(r.stop.stop_token_ids, lim.vocab_size, "stop_token_ids"));
  if (r.n < 1 || r.n > lim.max_num_seqs)
    return invalidArgument("n must be in [1, " + std::to_string(lim.max_num_seqs) + "]");
  const auto prompt = static_cast<int64_t>(r.token_ids.size());
  if (r.stop.max_tokens && *r.stop.max_tokens < 1) return invalidArgument("max_tokens must be >= 1");
  if (r.stop.min_tokens < 0) return invalidArgument("min_tokens must be >= 0");
  if (r.stop.max_tokens && r.stop.min_tokens > *r.stop.max_tokens)
    return invalidArgument("min_tokens must be <= max_tokens");
  if (r.stop.max_tokens && prompt + *r.stop.max_tokens > lim.max_model_len) {
    return invalidArgument("prompt length " + std::to_string(prompt) + " + max_tokens " +
                           std::to_string(*r.stop.max_tokens) + " exceeds max_model_len " +
                           std::to_string(lim.max_model_len));
  }
  if (prompt >= lim.max_model_len) {
    return invalidArgument("prompt length " + std::to_string(prompt) +
                           " leaves no room to generate within max_model_len " +
                           std::to_string(lim.max_model_len));
  }
  const int64_t need = (prompt + 1 + lim.block_size - 1) / lim.block_size;
  if (need > lim.num_blocks) {
    return invalidArgument("prompt length " + std::to_string(prompt) + " needs " +
                           std::to_string(need) + " KV blocks but the pool has " +
                           std::to_string(lim.num_blocks));
  }
  if (r.constraint && (r.constraint->resume_tokens < 0 || r.constraint->resume_tokens >= prompt)) {
    return invalidArgument("constraint resume_tokens must be in [0, prompt length)");
  }
  return checkSampling(r.sampling, lim.vocab_size);
}

Scheduler::Scheduler(const SchedulerOptions& options, ModelRunner* runner)
    : options_(options),
      runner_(runner),
      limits_{runner->vocabSize(), runner->maxModelLen(), runner->blockSize(),
              runner->numBlocks(), options.max_num_seqs},
      pool_(runner->numBlocks(), options.enable_prefix_caching) {
  if (options_.block_manager) {
    pool_.setEvictionListener([this](BlockId b, kv::BlockHash h, std::optional<kv::BlockHash> p) {
      offload(b, h, p);
    });
  }
}

Scheduler::~Scheduler() = default;

Status Scheduler::add(Request request, OutputCallback callback, std::shared_ptr<GuidedGrammar> guided) {
  if (groups_.count(request.request_id)) {
    return Status(StatusCode::kAlreadyExists,
                  "request_id '" + request.request_id + "' is already in flight");
  }
  auto g = std::make_unique<Group>();
  g->root = kv::rootHash(options_.model_id, request.cache_salt);
  const auto prompt = static_cast<int32_t>(request.token_ids.size());
  g->max_tokens = request.stop.max_tokens.value_or(limits_.max_model_len - prompt);
  g->suppress = request.stop.stop_token_ids;
  if (!request.stop.ignore_eos) {
    g->suppress.insert(g->suppress.end(), options_.eos_token_ids.begin(),
                       options_.eos_token_ids.end());
  }
  const uint64_t base_seed =
      request.sampling.seed ? *request.sampling.seed : std::random_device{}() * 0x100000001ull;
  for (int32_t i = 0; i < request.n; ++i) {
    auto s = std::make_unique<Sequence>();
    s->group = g.get();
    s->index = i;
    s->order = next_order_++;
    s->tokens = request.token_ids;
    s->num_prompt = prompt;
    s->rng = SamplerRng(base_seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull);
    if (guided) s->matcher = std::make_unique<structured::Matcher>(guided->grammar);
    g->seqs.push_back(std::move(s));
  }
  if (guided && !options_.token_trie) return invalidArgument("structured output needs the vocabulary");
  if (guided && request.constraint && request.constraint->resume_tokens > 0) {
    // A resumed output: its matchers start where the earlier worker's stood.
    const auto resumed = std::span<const int32_t>(request.token_ids).last(
        static_cast<size_t>(request.constraint->resume_tokens));
    for (auto& s : g->seqs) {
      for (int32_t t : resumed) {
        if (!s->matcher->advance(options_.token_trie->bytes(t))) {
          return invalidArgument("the resumed output does not fit its structured output constraint");
        }
      }
    }
  }
  g->guided = std::move(guided);
  g->num_live = request.n;
  g->siblings_released = request.n == 1;
  if (request.kv_import) {
    acceptImport(g.get(), std::move(request.kv_import), request.token_ids);
  }
  g->request = std::move(request);
  g->callback = std::move(callback);
  Sequence* first = g->seqs[0].get();
  first->state = SeqState::kWaiting;
  waiting_.push_back(first);
  addUnadmitted(1);
  const RequestId id = g->request.request_id;
  groups_.emplace(id, std::move(g));
  return Status::ok();
}

bool Scheduler::abort(const RequestId& id, Status why) {
  const auto it = groups_.find(id);
  if (it == groups_.end()) return false;
  Group* g = it->second.get();
  for (auto& s : g->seqs) {
    if (s->state != SeqState::kFinished) finishSeq(s.get(), FinishReason::kAbort, Output{}, why);
  }
  deliver();
  return true;
}

void Scheduler::abortAll(const Status& why) {
  std::vector<RequestId> ids;
  for (const auto& [id, g] : groups_) ids.push_back(id);
  for (const auto& id : ids) abort(id, why);
}

Status Scheduler::step() {
  schedule();
  Batch batch;
  for (Planned& p : plan_) {
    if (p.dropped) continue;
    Sequence* s = p.seq;
    SequenceChunk c;
    c.tokens = std::span<const int32_t>(s->tokens).subspan(s->num_computed, p.num_tokens);
    c.start_pos = s->num_computed;
    c.block_table = s->blocks;
    p.prompt_rows = needsPromptLogits(s);
    const bool last = s->num_computed + p.num_tokens == static_cast<int32_t>(s->tokens.size());
    p.num_logits = p.prompt_rows ? p.num_tokens : (last ? 1 : 0);
    c.num_logits = p.num_logits;
    batch.seqs.push_back(c);
  }
  last_batch_seqs_ = static_cast<int32_t>(batch.seqs.size());
  last_batch_tokens_ = batch.numTokens();
  if (batch.seqs.empty()) {
    deliver();  // finishes from schedule() (sequences too large for the pool)
    return Status::ok();
  }
  ++counters_.steps;
  logits_.resize(static_cast<size_t>(batch.numLogits()) * limits_.vocab_size);
  const auto t0 = std::chrono::steady_clock::now();
  Status st = runner_->forward(batch, logits_);
  counters_.forward_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now() - t0).count();
  if (!st.isOk()) {
    std::vector<RequestId> ids;
    for (const Planned& p : plan_) {
      if (!p.dropped) ids.push_back(p.seq->group->request.request_id);
    }
    for (const auto& id : ids) abort(id, st.withPrefix("forward failed"));
    return st;
  }
  update(logits_);
  deliver();
  return Status::ok();
}

void Scheduler::schedule() {
  plan_.clear();
  budget_ = options_.max_num_batched_tokens;
  prompt_rows_budget_ = static_cast<int32_t>(
      std::max<int64_t>(16, kMaxPromptLogitFloats / std::max(1, limits_.vocab_size)));
  preempted_ = false;
  scheduleRunning(/*decodes=*/true);
  scheduleRunning(/*decodes=*/false);
  if (!preempted_) admitWaiting();
}

void Scheduler::scheduleRunning(bool decodes) {
  for (size_t i = 0; i < running_.size() && budget_ > 0; ++i) {
    Sequence* s = running_[i];
    const int32_t remaining = static_cast<int32_t>(s->tokens.size()) - s->num_computed;
    if ((remaining == 1) != decodes) continue;
    const int32_t n = chunkLimit(s, std::min(remaining, budget_));
    if (n == 0) continue;
    if (!ensureBlocks(s, n)) continue;  // s was preempted (it was the newest) or finished
    plan_.push_back({s, n, false});
    budget_ -= n;
    if (needsPromptLogits(s)) prompt_rows_budget_ -= n;
  }
}

bool Scheduler::ensureBlocks(Sequence* s, int32_t num_tokens) {
  const int32_t need = ceilDiv(s->num_computed + num_tokens, limits_.block_size) -
                       static_cast<int32_t>(s->blocks.size());
  while (!pool_.allocate(need, s->blocks)) {
    Sequence* victim = running_.back();
    if (victim == s && running_.size() == 1) {
      Output out;  // alone and still too large: the pool is its context limit
      finishSeq(s, FinishReason::kLength, std::move(out));
      return false;
    }
    preempt(victim);
    if (victim == s) return false;
  }
  return true;
}

void Scheduler::preempt(Sequence* s) {
  for (Planned& p : plan_) {
    if (p.seq == s && !p.dropped) {
      p.dropped = true;
      budget_ += p.num_tokens;
    }
  }
  removeRunning(s);
  releaseBlocks(s);
  s->state = SeqState::kWaiting;
  waiting_.push_front(s);
  preempted_ = true;
  ++counters_.preemptions;
}

bool Scheduler::needsPromptLogits(const Sequence* s) const {
  const Group* g = s->group;
  return s->index == 0 && g->request.sampling.prompt_logprobs && !g->prompt_lp_delivered &&
         static_cast<int32_t>(g->prompt_lp.size()) < s->num_prompt - 1;
}

int32_t Scheduler::maxPrefixHit(const Sequence* s) const {
  int32_t max_hit = (static_cast<int32_t>(s->tokens.size()) - 1) / limits_.block_size;
  // Position c scores prompt token c + 1: its row must be computed, so no hit may cover it.
  if (needsPromptLogits(s)) {
    max_hit = std::min(max_hit, static_cast<int32_t>(s->group->prompt_lp.size()) / limits_.block_size);
  }
  return max_hit;
}

int32_t Scheduler::chunkLimit(const Sequence* s, int32_t n) const {
  return needsPromptLogits(s) ? std::min(n, std::max(0, prompt_rows_budget_)) : n;
}

int32_t Scheduler::acquireCachedPrefix(Sequence* s) {
  if (!pool_.cachingEnabled()) return 0;
  kv::extendBlockHashes(s->group->root, s->tokens, limits_.block_size, s->hashes);
  const int32_t max_hit = maxPrefixHit(s);
  int32_t hit = 0;
  while (hit < max_hit) {
    const auto b = pool_.lookup(s->hashes[hit]);
    if (!b) break;
    pool_.acquire(*b);
    s->blocks.push_back(*b);
    ++hit;
  }
  s->num_committed = hit;
  s->num_computed = hit * limits_.block_size;
  return hit;
}

int32_t Scheduler::tieredPrefix(Sequence* s, int32_t from) {
  kv::KvBlockManager* m = options_.block_manager;
  const Group* g = s->group;
  const bool importing = g->import && s->index == 0 && !g->admitted;
  if ((!m && !importing) || !pool_.cachingEnabled()) return 0;
  const int32_t max_hit = maxPrefixHit(s);
  int32_t end = from;
  while (end < max_hit && ((importing && importedBlock(g, end)) || (m && m->find(s->hashes[end])))) ++end;
  // Tail first, so the run's head ends up most recently used (evicted last).
  if (m) {
    for (int32_t i = end; i-- > from;) m->touch(s->hashes[i]);
  }
  return end - from;
}

int32_t Scheduler::onboard(Sequence* s, int32_t count) {
  kv::KvBlockManager* m = options_.block_manager;
  Group* g = s->group;
  const bool importing = g->import && s->index == 0 && !g->admitted;
  int32_t done = 0, imported = 0;
  for (; done < count; ++done) {
    const int32_t i = s->num_committed;
    const BlockId b = s->blocks[i];
    Status st = notFound("KV block not held");
    if (const uint8_t* src = importing ? importedBlock(g, i) : nullptr) {
      st = runner_->writeBlock(b, src);
      imported += st.isOk() ? 1 : 0;
    } else if (m) {
      st = m->onboard(s->hashes[i], [&](const void* src) { return runner_->writeBlock(b, src); });
    }
    if (!st.isOk()) break;
    std::optional<kv::BlockHash> parent;
    if (i > 0) parent = s->hashes[i - 1];
    s->blocks[i] = pool_.commit(b, s->hashes[i], parent);
    ++s->num_committed;
    s->num_computed += limits_.block_size;
  }
  if (m) pool_.appendEvents(m->takeEvents());
  counters_.blocks_onboarded += done - imported;
  counters_.blocks_imported += imported;
  g->import_used += imported;
  return done;
}

void Scheduler::offload(BlockId block, kv::BlockHash hash, std::optional<kv::BlockHash> parent) {
  kv::KvBlockManager* m = options_.block_manager;
  // A failed copy loses the block, as an eviction without tiers would.
  (void)m->offload(hash, parent, [&](void* dst) { return runner_->readBlock(block, dst); });
  pool_.appendEvents(m->takeEvents());
}

void Scheduler::acceptImport(Group* g, std::shared_ptr<const KvBlocks> in, const std::vector<int32_t>& prompt) {
  const auto n = static_cast<int64_t>(in->hashes.size());
  if (n == 0) return;
  // Only a run of this prompt's chain, where it belongs in it (a block hash names its whole
  // prefix), in this runner's layout, and only blocks admission could take (not the last one).
  bool ok = pool_.cachingEnabled() && in->block_bytes > 0 && in->block_bytes == runner_->blockBytes() &&
            in->data.size() == static_cast<size_t>(n) * in->block_bytes;
  std::vector<kv::BlockHash> chain;
  if (ok) {
    const auto max_hit = static_cast<size_t>((static_cast<int32_t>(prompt.size()) - 1) / limits_.block_size);
    chain = kv::blockHashes(g->root, prompt, limits_.block_size);
    chain.resize(std::min(chain.size(), max_hit));
    const auto first = std::find(chain.begin(), chain.end(), in->hashes[0]);
    ok = first != chain.end() && static_cast<int64_t>(chain.end() - first) >= n &&
         std::equal(in->hashes.begin(), in->hashes.end(), first);
    g->import_at = static_cast<int32_t>(first - chain.begin());
  }
  if (!ok) {
    counters_.blocks_import_skipped += n;
    return;
  }
  g->import = std::move(in);
}

const uint8_t* Scheduler::importedBlock(const Group* g, int32_t i) const {
  if (!g->import) return nullptr;
  const int64_t k = static_cast<int64_t>(i) - g->import_at;
  if (k < 0 || k >= static_cast<int64_t>(g->import->hashes.size())) return nullptr;
  return g->import->data.data() + static_cast<size_t>(k) * g->import->block_bytes;
}

void Scheduler::dropImport(Group* g) {
  if (!g->import) return;
  const auto n = static_cast<int64_t>(g->import->hashes.size());
  counters_.blocks_import_skipped += n - g->import_used;
  g->import.reset();
}

KvBlocks Scheduler::exportBlocks(std::span<const kv::BlockHash> hashes) {
  KvBlocks out;
  out.block_bytes = runner_->blockBytes();
  if (out.block_bytes == 0) return out;
  kv::KvBlockManager* m = options_.block_manager;
  out.data.resize(hashes.size() * out.block_bytes);
  for (const kv::BlockHash h : hashes) {
    uint8_t* dst = out.data.data() + out.hashes.size() * out.block_bytes;
    Status st = notFound("not cached");
    if (const auto b = pool_.lookup(h)) {
      st = runner_->readBlock(*b, dst);
    } else if (m) {
      st = m->exportBlock(h, [&](const void* src) {
        std::memcpy(dst, src, out.block_bytes);
        return Status::ok();
      });
    }
    if (!st.isOk()) break;
    out.hashes.push_back(h);
  }
  out.data.resize(out.hashes.size() * out.block_bytes);
  counters_.blocks_exported += static_cast<int64_t>(out.hashes.size());
  if (m) pool_.appendEvents(m->takeEvents());  // a failed disk read drops its block
  return out;
}

void Scheduler::resetPrefixCache() {
  pool_.resetPrefixCache();
  if (options_.block_manager) options_.block_manager->clear();
}

void Scheduler::admitWaiting() {
  while (budget_ > 0 && !waiting_.empty() &&
         static_cast<int32_t>(running_.size()) < options_.max_num_seqs) {
    Sequence* s = waiting_.front();
    const int32_t hit = acquireCachedPrefix(s);
    const int32_t tier_hit = tieredPrefix(s, hit);
    const int32_t start = s->num_computed + tier_hit * limits_.block_size;
    int32_t n = chunkLimit(s, std::min(static_cast<int32_t>(s->tokens.size()) - start, budget_));
    if (n == 0) {
      releaseBlocks(s);  // no prompt-logits rows left in this step
      return;
    }
    const int32_t need = ceilDiv(start + n, limits_.block_size) -
                         static_cast<int32_t>(s->blocks.size());
    if (!pool_.allocate(need, s->blocks)) {
      releaseBlocks(s);  // give the hits back; retried next step
      return;
    }
    const int32_t onboarded = tier_hit > 0 ? onboard(s, tier_hit) : 0;
    // Fewer onboarded than found: compute from there (the blocks allocated still cover it).
    n = chunkLimit(s, std::min(static_cast<int32_t>(s->tokens.size()) - s->num_computed, budget_));
    waiting_.pop_front();
    Group* g = s->group;
    if (s->index == 0 && !g->admitted) {
      g->admitted = true;
      dropImport(g);  // what it brought is in the pool now (or was not usable)
      addUnadmitted(-1);
      g->cached_tokens = s->num_computed;
      counters_.prompt_tokens_looked_up += s->num_prompt;
      counters_.prompt_tokens_cached += g->cached_tokens;
      counters_.prompt_tokens_onboarded += onboarded * limits_.block_size;
    }
    s->state = SeqState::kRunning;
    running_.insert(std::upper_bound(running_.begin(), running_.end(), s,
                                     [](const Sequence* a, const Sequence* b) {
                                       return a->order < b->order;
                                     }),
                    s);
    plan_.push_back({s, n, false});
    budget_ -= n;
    if (needsPromptLogits(s)) prompt_rows_budget_ -= n;
  }
}

void Scheduler::update(std::span<const float> logits) {
  const auto vocab = static_cast<size_t>(limits_.vocab_size);
  size_t row = 0;
  for (const Planned& p : plan_) {
    if (p.dropped) continue;
    Sequence* s = p.seq;
    const bool decode = p.num_tokens == 1 && s->num_computed >= s->num_prompt;
    (decode ? counters_.decode_tokens : counters_.prefill_tokens) += p.num_tokens;
    const int32_t start = s->num_computed;
    s->num_computed += p.num_tokens;
    commitFullBlocks(s);
    if (p.prompt_rows) recordPromptLogprobs(s, start, p.num_logits, logits.subspan(row * vocab));
    row += static_cast<size_t>(p.num_logits);
    if (s->num_computed != static_cast<int32_t>(s->tokens.size())) continue;
    sampleNext(s, logits.subspan((row - 1) * vocab, vocab));
    Group* g = s->group;
    if (!g->siblings_released && s->index == 0) releaseSiblings(g);
  }
}

void Scheduler::recordPromptLogprobs(Sequence* s, int32_t start, int32_t rows, std::span<const float> logits) {
  Group* g = s->group;
  const auto vocab = static_cast<size_t>(limits_.vocab_size);
  const int32_t top = *g->request.sampling.prompt_logprobs;
  for (int32_t j = 0; j < rows; ++j) {
    // Row j is position start + j, which scores the token after it; a recompute after a
    // preemption passes positions already scored.
    const int32_t target = start + j + 1;
    if (target >= s->num_prompt || target != static_cast<int32_t>(g->prompt_lp.size()) + 1) continue;
    g->prompt_lp.push_back(sampler_.logprobsOf(logits.subspan(static_cast<size_t>(j) * vocab, vocab),
                                               s->tokens[static_cast<size_t>(target)], top));
  }
}

void Scheduler::attachPromptLogprobs(Sequence* s, Output& out) {
  Group* g = s->group;
  if (s->index != 0 || !g->request.sampling.prompt_logprobs || g->prompt_lp_delivered ||
      static_cast<int32_t>(g->prompt_lp.size()) != s->num_prompt - 1) {
    return;
  }
  g->prompt_lp_delivered = true;
  out.prompt_logprobs = std::move(g->prompt_lp);
  g->prompt_lp.clear();
}

void Scheduler::commitFullBlocks(Sequence* s) {
  if (!pool_.cachingEnabled()) return;
  const int32_t full = s->num_computed / limits_.block_size;
  if (full <= s->num_committed) return;
  kv::extendBlockHashes(s->group->root, s->tokens, limits_.block_size, s->hashes);
  for (int32_t i = s->num_committed; i < full; ++i) {
    std::optional<kv::BlockHash> parent;
    if (i > 0) parent = s->hashes[i - 1];
    s->blocks[i] = pool_.commit(s->blocks[i], s->hashes[i], parent);
  }
  s->num_committed = full;
}

void Scheduler::sampleNext(Sequence* s, std::span<const float> logits) {
  Group* g = s->group;
  const std::span<const int32_t> all(s->tokens);
  SampleContext ctx;
  ctx.prompt = all.first(s->num_prompt);
  ctx.output = all.subspan(s->num_prompt);
  ctx.suppress = g->suppress;
  ctx.min_tokens = g->request.stop.min_tokens;
  if (s->matcher) {
    if (!guidedMask(s, logits.size())) {
      if (s->matcher->accepting()) {
        // Complete, and the stop tokens may not end it (ignore_eos, min_tokens): it ends here.
        finishSeq(s, FinishReason::kStop, Output{});
      } else {
        finishSeq(s, FinishReason::kAbort, Output{},
                  internalError("structured output: no token of the vocabulary can continue the "
                                "output the constraint allows"));
      }
      return;
    }
    ctx.allowed = allowed_;
  }
  SampleResult r = sampler_.sample(logits, g->request.sampling, ctx, s->rng);
  s->tokens.push_back(r.token);
  if (s->matcher && !isStopToken(g, r.token) &&
      !s->matcher->advance(options_.token_trie->bytes(r.token))) {
    finishSeq(s, FinishReason::kAbort, Output{},
              internalError("structured output: token " + std::to_string(r.token) +
                            " was drawn outside the constraint"));
    return;
  }
  Output out;
  out.token_ids.push_back(r.token);
  if (r.logprobs) out.logprobs.push_back(std::move(*r.logprobs));
  attachPromptLogprobs(s, out);
  const FinishReason reason = stopReason(s, r.token);
  if (reason != FinishReason::kNone) {
    finishSeq(s, reason, std::move(out));
    return;
  }
  out.request_id = g->request.request_id;
  out.index = s->index;
  outbox_.emplace_back(g, std::move(out));
}

bool Scheduler::isStopToken(const Group* g, int32_t token) {
  return std::find(g->suppress.begin(), g->suppress.end(), token) != g->suppress.end();
}

bool Scheduler::guidedMask(Sequence* s, size_t vocab) {
  const Group* g = s->group;
  allowed_.assign((vocab + 63) / 64, 0);
  s->matcher->fillMask(*options_.token_trie, allowed_, &g->guided->masks);
  // The stop tokens may end a complete output, unless min_tokens still suppresses them.
  const auto generated = static_cast<int32_t>(s->tokens.size()) - s->num_prompt;
  const bool may_stop = s->matcher->accepting() && generated >= g->request.stop.min_tokens;
  for (int32_t id : g->suppress) {
    const uint64_t bit = uint64_t{1} << (id & 63);
    uint64_t& word = allowed_[static_cast<size_t>(id) >> 6];
    word = may_stop ? (word | bit) : (word & ~bit);
  }
  return std::any_of(allowed_.begin(), allowed_.end(), [](uint64_t w) { return w != 0; });
}

FinishReason Scheduler::stopReason(const Sequence* s, int32_t token) const {
  const Group* g = s->group;
  const auto generated = static_cast<int32_t>(s->tokens.size()) - s->num_prompt;
  if (generated >= g->request.stop.min_tokens &&
      std::find(g->suppress.begin(), g->suppress.end(), token) != g->suppress.end()) {
    return FinishReason::kStop;
  }
  if (generated >= g->max_tokens) return FinishReason::kLength;
  if (static_cast<int32_t>(s->tokens.size()) >= limits_.max_model_len) return FinishReason::kLength;
  return FinishReason::kNone;
}

void Scheduler::finishSeq(Sequence* s, FinishReason reason, Output out, Status status) {
  Group* g = s->group;
  if (s->state == SeqState::kRunning) removeRunning(s);
  if (s->state == SeqState::kWaiting) removeWaiting(s);
  releaseBlocks(s);
  s->state = SeqState::kFinished;
  attachPromptLogprobs(s, out);
  out.request_id = g->request.request_id;
  out.index = s->index;
  out.finish_reason = reason;
  out.status = std::move(status);
  out.usage = Usage{s->num_prompt, g->cached_tokens,
                    static_cast<int32_t>(s->tokens.size()) - s->num_prompt};
  outbox_.emplace_back(g, std::move(out));
  if (s->index == 0 && !g->siblings_released && reason != FinishReason::kAbort) {
    releaseSiblings(g);  // they can still run without sample 0's blocks
  }
  if (--g->num_live == 0) {
    dropImport(g);
    if (!g->admitted) addUnadmitted(-1);
    g->admitted = true;
    ++counters_.finished_requests;
    done_groups_.push_back(g->request.request_id);
  }
}

void Scheduler::releaseSiblings(Group* g) {
  g->siblings_released = true;
  // Front of the queue, in index order: they belong to an admitted request.
  for (size_t i = g->seqs.size(); i-- > 1;) {
    Sequence* s = g->seqs[i].get();
    if (s->state != SeqState::kHeld) continue;
    s->state = SeqState::kWaiting;
    waiting_.push_front(s);
  }
}

void Scheduler::releaseBlocks(Sequence* s) {
  std::reverse(s->blocks.begin(), s->blocks.end());  // tail first: evicted first
  pool_.release(s->blocks);
  s->blocks.clear();
  s->num_computed = 0;
  s->num_committed = 0;
}

void Scheduler::removeRunning(Sequence* s) {
  running_.erase(std::find(running_.begin(), running_.end(), s));
}

void Scheduler::removeWaiting(Sequence* s) {
  waiting_.erase(std::find(waiting_.begin(), waiting_.end(), s));
}

void Scheduler::addUnadmitted(int32_t delta) {
  num_unadmitted_ += delta;
  if (options_.waiting_gauge) options_.waiting_gauge->store(num_unadmitted_, std::memory_order_relaxed);
}

void Scheduler::deliver() {
  for (auto& [g, out] : outbox_) {
    if (g->callback) g->callback(std::move(out));
  }
  outbox_.clear();
  for (const auto& id : done_groups_) groups_.erase(id);
  done_groups_.clear();
}

}  // namespace turbine::engine
