#include "frontend/generation_job.h"

#include "frontend/errors.h"

namespace turbine::frontend {
namespace {

std::string finishName(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    default: return "stop";
  }
}

double secondsSince(std::chrono::steady_clock::time_point t, std::chrono::steady_clock::time_point now) {
  return std::chrono::duration<double>(now - t).count();
}

}  // namespace

GenerationJob::GenerationJob(JobContext context, ApiKind kind, ResponseMeta meta, bool stream,
                             bool include_usage, std::string endpoint,
                             std::chrono::steady_clock::time_point received,
                             std::shared_ptr<HttpResponder> responder)
    : ctx_(std::move(context)), kind_(kind), meta_(std::move(meta)), stream_(stream),
      include_usage_(include_usage), endpoint_(std::move(endpoint)), received_(received),
      responder_(std::move(responder)) {
  meta_.usage_field = stream_ && include_usage_;
}

void GenerationJob::addSequence(GenerateRequest request, std::vector<std::string> stop,
                                bool counts_prompt, PromptDisplay display) {
  Sequence s;
  s.request_id = request.request_id;
  s.index = static_cast<int32_t>(seqs_.size());
  s.prompt_tokens = static_cast<int32_t>(request.prompt_token_ids.size());
  s.counts_prompt = counts_prompt;
  s.want_logprobs = request.sampling.logprobs >= 0;
  s.detokenizer = ctx_.backend->newDetokenizer(request.model);
  s.stop = StopStringMatcher(std::move(stop));
  s.echo = std::move(display.echo);
  s.echo_logprobs = kind_ == ApiKind::kCompletion && s.want_logprobs && request.sampling.prompt_logprobs >= 0;
  s.echo_only = display.echo_only;
  s.top_logprobs = std::max(0, request.sampling.logprobs);
  s.show_prompt_logprobs = display.show_prompt_logprobs;
  if (!request.prompt_token_ids.empty()) s.first_prompt_token = request.prompt_token_ids.front();
  if (tool_format_) s.tools.emplace(*tool_format_);
  if (forced_function_) s.tools.emplace(ToolCallStream::forced(*forced_function_));
  if (reasoning_format_) s.reasoning.emplace(*reasoning_format_);
  s.pending = std::move(request);
  seqs_.push_back(std::move(s));
}

Status GenerationJob::start() {
  auto self = shared_from_this();
  if (stream_) {
    for (auto& s : seqs_) {
      s.delta_format = kind_ == ApiKind::kChat ? chatDeltaFormat(meta_, s.index)
                                               : completionDeltaFormat(meta_, s.index);
    }
  }
  for (size_t i = 0; i < seqs_.size(); ++i) {
    ChunkSink sink = [self, i](GenerationChunk chunk) { self->deliver(i, std::move(chunk)); };
    Status st = ctx_.backend->generate(std::move(seqs_[i].pending), std::move(sink));
    if (!st.isOk()) {
      for (size_t j = 0; j < i; ++j) ctx_.backend->abort(seqs_[j].request_id);
      finished_ = true;
      return st;
    }
    seqs_[i].submitted = true;
  }
  ctx_.active_jobs->fetch_add(1);
  std::weak_ptr<GenerationJob> weak = self;
  responder_->onDisconnect([weak] {
    if (auto job = weak.lock()) job->onDisconnect();
  });
  if (stream_) {
    responder_->beginStream(200, "text/event-stream");
    if (kind_ == ApiKind::kChat) {
      std::string roles;
      for (const auto& s : seqs_) roles += chatRoleEvent(meta_, s.index);
      responder_->writeStream(roles);
    }
  }
  for (auto& s : seqs_) {
    if (s.echo_logprobs) continue;  // sent with the prompt's logprobs
    emitContent(s, s.echo, {});
    s.echo.clear();
  }
  return Status::ok();
}

void GenerationJob::deliver(size_t i, GenerationChunk chunk) {
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    inbox_.emplace_back(i, std::move(chunk));
    post = !drain_posted_;
    drain_posted_ = true;
  }
  if (post) responder_->post([self = shared_from_this()] { self->drainInbox(); });
}

void GenerationJob::drainInbox() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    draining_.swap(inbox_);
    drain_posted_ = false;
  }
  for (auto& [i, chunk] : draining_) onChunk(i, std::move(chunk));
  draining_.clear();
}

void GenerationJob::onChunk(size_t i, GenerationChunk chunk) {
  Sequence& s = seqs_[i];
  if (finished_ || !s.finish.empty()) return;  // late chunks after a stop string or disconnect
  if (chunk.cached_tokens) s.cached_tokens = *chunk.cached_tokens;
  if (chunk.finish == FinishReason::kError) return fail(chunk.error);
  if (chunk.prompt_logprobs) takePromptLogprobs(s, *chunk.prompt_logprobs);
  if (s.echo_logprobs && chunk.finish != FinishReason::kNone) {  // ended before any logprobs came
    s.echo_logprobs = false;
    emitContent(s, s.echo, {});
    s.echo.clear();
  }
  std::string text;
  std::vector<LogprobEntry> logprobs;
  if (!s.echo_only) consumeTokens(s, chunk, &text, &logprobs);
  std::string reason;
  if (s.stop.stopped()) {
    reason = "stop";
    ctx_.backend->abort(s.request_id);
  } else if (chunk.finish != FinishReason::kNone) {
    text += s.stop.push(s.detokenizer->flush());
    if (!s.stop.stopped()) text += s.stop.flush();
    reason = s.stop.stopped() ? "stop" : finishName(chunk.finish);
    if (s.echo_only) reason = "length";  // max_tokens 0
  }
  emit(s, text, logprobs);
  if (!reason.empty()) finishSequence(s, std::move(reason));
}

void GenerationJob::takePromptLogprobs(Sequence& s, std::vector<TokenLogprob>& prompt) {
  const std::string& model = meta_.model;
  if (s.show_prompt_logprobs) {
    std::vector<PromptLogprobPosition> positions(1);  // the first token: null
    positions.reserve(prompt.size() + 1);
    for (const TokenLogprob& lp : prompt) {
      PromptLogprobPosition p;
      p.push_back({lp.token_id, lp.logprob, lp.rank, ctx_.backend->tokenPiece(model, lp.token_id)});
      for (size_t k = 0; k < lp.top.size(); ++k) {
        const auto& [id, v] = lp.top[k];
        if (id == lp.token_id) continue;
        p.push_back({id, v, static_cast<int32_t>(k) + 1, ctx_.backend->tokenPiece(model, id)});
      }
      positions.push_back(std::move(p));
    }
    s.prompt_logprobs = std::move(positions);
  }
  if (!s.echo_logprobs) return;
  s.echo_logprobs = false;
  // The echoed prompt's tokens, as vLLM lists them: the first without a logprob, then each with
  // its own and the top k the request asked for.
  const auto k = static_cast<size_t>(s.top_logprobs);
  std::vector<LogprobEntry> entries;
  entries.reserve(prompt.size() + 1);
  LogprobEntry first;
  first.token = ctx_.backend->tokenPiece(model, s.first_prompt_token);
  first.is_null = true;
  entries.push_back(std::move(first));
  for (const TokenLogprob& lp : prompt) entries.push_back(logprobEntry(lp, k));
  for (LogprobEntry& e : entries) {
    e.text_offset = s.text_offset;
    s.text_offset += static_cast<int64_t>(e.token.size());
  }
  emitContent(s, s.echo, entries);
  s.echo.clear();
}

LogprobEntry GenerationJob::logprobEntry(const TokenLogprob& lp, size_t max_top) const {
  LogprobEntry e;
  e.token = ctx_.backend->tokenPiece(meta_.model, lp.token_id);
  e.logprob = lp.logprob;
  for (size_t j = 0; j < lp.top.size() && j < max_top; ++j) {
    e.top.emplace_back(ctx_.backend->tokenPiece(meta_.model, lp.top[j].first), lp.top[j].second);
  }
  return e;
}

void GenerationJob::consumeTokens(Sequence& s, const GenerationChunk& chunk, std::string* text,
                                  std::vector<LogprobEntry>* logprobs) {
  if (chunk.token_ids.empty()) return;
  auto now = std::chrono::steady_clock::now();
  if (!first_token_seen_) {
    first_token_seen_ = true;
    ctx_.metrics->recordTimeToFirstToken(secondsSince(received_, now));
  }
  if (s.has_token) ctx_.metrics->recordInterTokenLatency(secondsSince(s.last_token, now));
  s.has_token = true;
  s.last_token = now;
  for (size_t k = 0; k < chunk.token_ids.size() && !s.stop.stopped(); ++k) {
    int32_t id = chunk.token_ids[k];
    ++s.completion_tokens;
    if (s.want_logprobs && k < chunk.logprobs.size()) {
      LogprobEntry e = logprobEntry(chunk.logprobs[k], chunk.logprobs[k].top.size());
      e.text_offset = s.text_offset;
      s.text_offset += static_cast<int64_t>(e.token.size());
      logprobs->push_back(std::move(e));
    }
    const std::optional<std::string> marker = markerText(s, id);
    *text += s.stop.push(marker ? *marker : s.detokenizer->push(id));
  }
  ctx_.metrics->addGenerationTokens(static_cast<int64_t>(chunk.token_ids.size()));
}

std::optional<std::string> GenerationJob::markerText(const Sequence& s, int32_t id) const {
  if (!s.tools && !s.reasoning) return std::nullopt;
  for (const auto& [marker, text] : markers_) {
    if (marker == id) return text;
  }
  return std::nullopt;
}

void GenerationJob::emit(Sequence& s, const std::string& text, const std::vector<LogprobEntry>& logprobs) {
  if (!s.reasoning && !s.tools) return emitContent(s, text, logprobs);  // no parser: no copy
  std::string content = text;
  if (s.reasoning) {
    ReasoningSplit split = s.reasoning->push(text);
    emitReasoning(s, split.reasoning);
    content = std::move(split.content);
  }
  if (s.tools) content = s.tools->push(content);
  emitContent(s, content, logprobs);
}

void GenerationJob::emitReasoning(Sequence& s, const std::string& text) {
  if (text.empty()) return;
  if (!stream_) {
    s.reasoning_text += text;
    return;
  }
  responder_->writeStream(chatReasoningDeltaEvent(meta_, s.index, text));
}

void GenerationJob::emitContent(Sequence& s, const std::string& text, const std::vector<LogprobEntry>& logprobs) {
  if (text.empty() && logprobs.empty()) return;
  if (!stream_) {
    s.text += text;
    s.logprobs.insert(s.logprobs.end(), logprobs.begin(), logprobs.end());
    return;
  }
  if (!s.want_logprobs) {
    scratch_.clear();
    appendDeltaEvent(scratch_, s.delta_format, text);
    responder_->writeStream(scratch_);
  } else if (kind_ == ApiKind::kChat) {
    responder_->writeStream(chatDeltaEvent(meta_, s.index, text, s.want_logprobs, logprobs));
  } else {
    responder_->writeStream(completionDeltaEvent(meta_, s.index, text, s.want_logprobs, logprobs, ""));
  }
}

void GenerationJob::finishSequence(Sequence& s, std::string reason) {
  if (s.reasoning) {
    ReasoningSplit split = s.reasoning->finish();
    s.reasoning.reset();
    emitReasoning(s, split.reasoning);
    emit(s, split.content, {});  // through the tool-call filter, if any
  }
  if (s.tools) {
    // As vLLM: a choice that called tools finishes with "tool_calls", whatever stopped it.
    ToolCallResult r = s.tools->finish();
    s.tools.reset();
    if (!parallel_tool_calls_ && r.calls.size() > 1) r.calls.resize(1);
    emitContent(s, r.content, {});
    if (!r.calls.empty()) {
      if (!forced_function_) reason = "tool_calls";
      if (stream_) responder_->writeStream(chatToolCallsEvent(meta_, s.index, r.calls));
      s.tool_calls = std::move(r.calls);
    }
  }
  s.finish = std::move(reason);
  ++done_;
  if (stream_) {
    if (kind_ == ApiKind::kChat) {
      responder_->writeStream(chatFinishEvent(meta_, s.index, s.finish));
    } else {
      responder_->writeStream(completionDeltaEvent(meta_, s.index, "", false, {}, s.finish));
    }
  }
  if (done_ == seqs_.size()) complete();
}

UsageInfo GenerationJob::usage() const {
  UsageInfo u;
  for (const auto& s : seqs_) {
    u.completion_tokens += s.completion_tokens;
    if (s.counts_prompt) {
      u.prompt_tokens += s.prompt_tokens;
      u.cached_tokens += s.cached_tokens;
    }
  }
  return u;
}

void GenerationJob::complete() {
  if (stream_) {
    std::string tail;
    if (include_usage_) {
      tail += usageEvent(meta_, kind_ == ApiKind::kChat ? "chat.completion.chunk" : "text_completion", usage());
    }
    tail += kDoneEvent;
    responder_->writeStream(tail);
    responder_->endStream();
  } else {
    std::vector<ChoiceOutput> choices;
    choices.reserve(seqs_.size());
    for (auto& s : seqs_) {
      ChoiceOutput c;
      c.index = s.index;
      c.text = std::move(s.text);
      c.finish_reason = s.finish;
      c.has_logprobs = s.want_logprobs;
      c.logprobs = std::move(s.logprobs);
      c.tool_calls = std::move(s.tool_calls);
      c.reasoning = std::move(s.reasoning_text);
      c.prompt_logprobs = std::move(s.prompt_logprobs);
      choices.push_back(std::move(c));
    }
    std::string body = kind_ == ApiKind::kChat ? chatCompletionJson(meta_, choices, usage())
                                               : completionJson(meta_, choices, usage());
    responder_->send(200, "application/json", std::move(body));
  }
  release(200);
}

void GenerationJob::fail(const Status& error) {
  for (const auto& s : seqs_) {
    if (s.finish.empty()) ctx_.backend->abort(s.request_id);
  }
  ApiError e = apiErrorFromStatus(error, {}, ctx_.retry_after_s);
  if (stream_) {
    // Headers are gone already: OpenAI-style clients read an error event inside the stream.
    responder_->writeStream(errorEvent(errorBody(e)) + std::string(kDoneEvent));
    responder_->endStream();
  } else {
    HttpHeaders extra;
    if (e.retry_after_s > 0) extra.emplace_back("Retry-After", std::to_string(e.retry_after_s));
    responder_->send(e.http_status, "application/json", errorBody(e), extra);
  }
  release(stream_ ? 200 : e.http_status);
}

void GenerationJob::onDisconnect() {
  if (finished_) return;
  release(499);  // accounted before the backend can see the abort
  for (const auto& s : seqs_) {
    if (s.finish.empty()) ctx_.backend->abort(s.request_id);
  }
}

void GenerationJob::release(int http_status) {
  if (finished_) return;
  finished_ = true;
  ctx_.metrics->recordRequest(endpoint_, http_status);
  ctx_.metrics->recordEndToEnd(secondsSince(received_, std::chrono::steady_clock::now()));
  ctx_.active_jobs->fetch_sub(1);
}

}  // namespace turbine::frontend
