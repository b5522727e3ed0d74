#include "runtime/grpc_convert.h"

#include <utility>

namespace turbine::runtime::grpc_convert {
namespace {

rpc::FinishReason toProto(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return rpc::FINISH_NONE;
    case FinishReason::kStop: return rpc::FINISH_STOP;
    case FinishReason::kLength: return rpc::FINISH_LENGTH;
    case FinishReason::kAbort: return rpc::FINISH_ABORT;
    case FinishReason::kError: return rpc::FINISH_ERROR;
  }
  return rpc::FINISH_ERROR;
}

FinishReason fromProto(rpc::FinishReason r) {
  switch (r) {
    case rpc::FINISH_NONE: return FinishReason::kNone;
    case rpc::FINISH_STOP: return FinishReason::kStop;
    case rpc::FINISH_LENGTH: return FinishReason::kLength;
    case rpc::FINISH_ABORT: return FinishReason::kAbort;
    default: return FinishReason::kError;
  }
}

void toProto(const TokenLogprobs& lp, rpc::TokenLogprobs* out) {
  out->set_token_id(lp.token_id);
  out->set_logprob(lp.logprob);
  out->set_rank(lp.rank);
  for (const auto& [token, logprob] : lp.top) {
    rpc::TopLogprob* t = out->add_top();
    t->set_token_id(token);
    t->set_logprob(logprob);
  }
}

TokenLogprobs fromProto(const rpc::TokenLogprobs& lp) {
  TokenLogprobs out{lp.token_id(), lp.logprob(), {}, lp.rank()};
  for (const rpc::TopLogprob& t : lp.top()) out.top.emplace_back(t.token_id(), t.logprob());
  return out;
}

struct CodePair {
  StatusCode ours;
  grpc::StatusCode theirs;
};
constexpr CodePair kCodes[] = {
    {StatusCode::kOk, grpc::StatusCode::OK},
    {StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
    {StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
    {StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
    {StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED},
    {StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION},
    {StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE},
    {StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
    {StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
    {StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED},
    {StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
    {StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
    {StatusCode::kInternal, grpc::StatusCode::INTERNAL},
};

}  // namespace

rpc::GenerateRequest toProto(const GenerateRequest& r) {
  rpc::GenerateRequest p;
  p.set_request_id(r.request_id);
  p.mutable_token_ids()->Add(r.token_ids.begin(), r.token_ids.end());
  rpc::Sampling* s = p.mutable_sampling();
  s->set_temperature(r.sampling.temperature);
  s->set_top_p(r.sampling.top_p);
  s->set_top_k(r.sampling.top_k);
  s->set_min_p(r.sampling.min_p);
  if (r.sampling.seed) s->set_seed(*r.sampling.seed);
  s->set_repetition_penalty(r.sampling.repetition_penalty);
  s->set_presence_penalty(r.sampling.presence_penalty);
  s->set_frequency_penalty(r.sampling.frequency_penalty);
  for (const auto& [token, bias] : r.sampling.logit_bias) {
    rpc::LogitBias* b = s->add_logit_bias();
    b->set_token_id(token);
    b->set_bias(bias);
  }
  s->set_logprobs(r.sampling.logprobs);
  if (r.sampling.prompt_logprobs >= 0) s->set_prompt_logprobs(r.sampling.prompt_logprobs);
  rpc::Stop* st = p.mutable_stop();
  if (r.stop.max_tokens) st->set_max_tokens(*r.stop.max_tokens);
  st->mutable_stop_token_ids()->Add(r.stop.stop_token_ids.begin(), r.stop.stop_token_ids.end());
  st->set_ignore_eos(r.stop.ignore_eos);
  st->set_min_tokens(r.stop.min_tokens);
  p.set_cache_salt(r.cache_salt);
  p.set_overlap_blocks(r.overlap_blocks);
  if (r.constraint) {
    p.mutable_constraint()->set_kind(structured::kindName(r.constraint->kind));
    p.mutable_constraint()->set_spec(r.constraint->spec);
    p.mutable_constraint()->set_resume_tokens(r.constraint->resume_tokens);
  }
  if (r.disaggregation.prefill_only || !r.disaggregation.kv_address.empty()) {
    p.mutable_disaggregation()->set_prefill_only(r.disaggregation.prefill_only);
    p.mutable_disaggregation()->set_kv_address(r.disaggregation.kv_address);
  }
  return p;
}

GenerateRequest fromProto(const rpc::GenerateRequest& p) {
  GenerateRequest r;
  r.request_id = p.request_id();
  r.token_ids.assign(p.token_ids().begin(), p.token_ids().end());
  const rpc::Sampling& s = p.sampling();
  r.sampling.temperature = s.temperature();
  r.sampling.top_p = s.top_p();
  r.sampling.top_k = s.top_k();
  r.sampling.min_p = s.min_p();
  if (s.has_seed()) r.sampling.seed = s.seed();
  r.sampling.repetition_penalty = s.repetition_penalty();
  r.sampling.presence_penalty = s.presence_penalty();
  r.sampling.frequency_penalty = s.frequency_penalty();
  for (const rpc::LogitBias& b : s.logit_bias()) r.sampling.logit_bias.emplace_back(b.token_id(), b.bias());
  r.sampling.logprobs = s.logprobs();
  r.sampling.prompt_logprobs = s.has_prompt_logprobs() ? s.prompt_logprobs() : -1;
  const rpc::Stop& st = p.stop();
  if (st.has_max_tokens()) r.stop.max_tokens = st.max_tokens();
  r.stop.stop_token_ids.assign(st.stop_token_ids().begin(), st.stop_token_ids().end());
  r.stop.ignore_eos = st.ignore_eos();
  r.stop.min_tokens = st.min_tokens();
  r.cache_salt = p.cache_salt();
  r.overlap_blocks = p.overlap_blocks();
  if (p.has_constraint()) {  // the server refuses unknown kinds before this
    const auto kind = structured::kindFromName(p.constraint().kind());
    r.constraint = structured::OutputConstraint{kind.value_or(structured::OutputConstraint::Kind::kJsonSchema),
                                                p.constraint().spec(), p.constraint().resume_tokens()};
  }
  if (p.has_disaggregation()) {
    r.disaggregation.prefill_only = p.disaggregation().prefill_only();
    r.disaggregation.kv_address = p.disaggregation().kv_address();
  }
  return r;
}

rpc::GenerateChunk toProto(const GenerateChunk& c) {
  rpc::GenerateChunk p;
  p.mutable_token_ids()->Add(c.token_ids.begin(), c.token_ids.end());
  for (const TokenLogprobs& lp : c.logprobs) toProto(lp, p.add_logprobs());
  if (c.prompt_logprobs) {
    p.set_has_prompt_logprobs(true);
    for (const TokenLogprobs& lp : *c.prompt_logprobs) toProto(lp, p.add_prompt_logprobs());
  }
  p.set_finish(toProto(c.finish));
  if (!c.error.isOk()) {
    p.set_error_code(static_cast<int32_t>(c.error.code()));
    p.set_error_message(c.error.message());
  }
  if (c.usage) {
    rpc::Usage* u = p.mutable_usage();
    u->set_prompt_tokens(c.usage->prompt_tokens);
    u->set_cached_tokens(c.usage->cached_tokens);
    u->set_completion_tokens(c.usage->completion_tokens);
  }
  p.set_kv_address(c.kv_address);
  return p;
}

GenerateChunk fromProto(const rpc::GenerateChunk& p) {
  GenerateChunk c;
  c.token_ids.assign(p.token_ids().begin(), p.token_ids().end());
  for (const rpc::TokenLogprobs& lp : p.logprobs()) c.logprobs.push_back(fromProto(lp));
  if (p.has_prompt_logprobs()) {
    c.prompt_logprobs.emplace();
    for (const rpc::TokenLogprobs& lp : p.prompt_logprobs()) c.prompt_logprobs->push_back(fromProto(lp));
  }
  c.finish = fromProto(p.finish());
  if (c.finish == FinishReason::kError) {
    const int code = p.error_code();
    const bool known = code > 0 && code <= static_cast<int>(StatusCode::kInternal);
    c.error = Status(known ? static_cast<StatusCode>(code) : StatusCode::kInternal,
                     p.error_message().empty() ? "worker error" : p.error_message());
  }
  if (p.has_usage()) {
    c.usage = Usage{p.usage().prompt_tokens(), p.usage().cached_tokens(), p.usage().completion_tokens()};
  }
  c.kv_address = p.kv_address();
  return c;
}

grpc::Status toGrpc(const Status& status) {
  if (status.isOk()) return grpc::Status::OK;
  for (const CodePair& c : kCodes) {
    if (c.ours == status.code()) return grpc::Status(c.theirs, status.message());
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, status.message());  // kIoError and others
}

Status fromGrpc(const grpc::Status& status, const std::string& context) {
  if (status.ok()) return Status::ok();
  StatusCode code = StatusCode::kInternal;
  for (const CodePair& c : kCodes) {
    if (c.theirs == status.error_code()) code = c.ours;
  }
  return Status(code, context + ": " + status.error_message());
}

}  // namespace turbine::runtime::grpc_convert
