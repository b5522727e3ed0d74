#include "worker/upstream_client.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/http_url.h"
#include "common/sse.h"

namespace turbine::worker {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxErrorBody = 16 * 1024;
constexpr size_t kMaxGetBody = 8 << 20;  // /health, /metrics

auto redirect(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

// The message of an OpenAI error body ({"error": {"message": ...}}, or FastAPI's {"detail":
// ...}), else the body itself, cut short.
std::string errorMessage(const std::string& body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    if (auto e = j.find("error"); e != j.end()) {
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string()) {
        return (*e)["message"].get<std::string>();
      }
      if (e->is_string()) return e->get<std::string>();
    }
    if (auto d = j.find("detail"); d != j.end()) return d->is_string() ? d->get<std::string>() : d->dump();
    if (auto m = j.find("message"); m != j.end() && m->is_string()) return m->get<std::string>();
  }
  return body.substr(0, 300);
}

// An HTTP error status as the request plane's status code: the caller's fault (4xx but 408 and
// 429) is InvalidArgument, overload ResourceExhausted, a failure of this request (500) Internal,
// and an engine that cannot serve (502-504, 408) Unavailable, which the frontend answers by
// moving the request to another worker and suspending this one for a while.
Status httpError(unsigned status, const std::string& body) {
  std::string m = "upstream answered HTTP " + std::to_string(status) + ": " + errorMessage(body);
  if (status == 429) return resourceExhausted(std::move(m));
  if (status >= 400 && status < 500 && status != 408) return invalidArgument(std::move(m));
  if (status == 500) return internalError(std::move(m));
  return unavailable(std::move(m));
}

runtime::FinishReason finishFrom(const std::string& reason) {
  if (reason == "length") return runtime::FinishReason::kLength;
  if (reason == "abort") return runtime::FinishReason::kAbort;
  return runtime::FinishReason::kStop;  // "stop", and anything else that ended it normally
}


// A token id from the upstream's JSON.
Status readTokenIds(const json& ids, std::vector<int32_t>& into, size_t skip = 0) {
  for (size_t i = skip; i < ids.size(); ++i) {
    if (!ids[i].is_number_integer()) return unavailable("upstream sent a token id that is not an integer");
    into.push_back(ids[i].get<int32_t>());
  }
  return Status::ok();
}

// One streamed event of vLLM's /v1/completions: choices[0] with token_ids (return_token_ids)
// and finish_reason; usage in the last.
Status readOpenAiEvent(const json& j, runtime::GenerateChunk& out, runtime::GenerateChunk& last,
                       std::optional<runtime::FinishReason>& finish) {
  if (auto ch = j.find("choices"); ch != j.end() && ch->is_array() && !ch->empty()) {
    const json& c = (*ch)[0];
    auto ids = c.find("token_ids");
    const bool has_text = c.contains("text") && c["text"].is_string() && !c["text"].get<std::string>().empty();
    if (ids != c.end() && ids->is_array()) {
      TURBINE_RETURN_IF_ERROR(readTokenIds(*ids, out.token_ids));
    } else if (has_text) {
      return unavailable(
          "upstream returned text without token_ids: it must support `return_token_ids` "
          "(vLLM 0.10.2 or later)");
    }
    if (auto f = c.find("finish_reason"); f != c.end() && f->is_string()) finish = finishFrom(f->get<std::string>());
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    runtime::Usage usage;
    usage.prompt_tokens = u->value("prompt_tokens", 0);
    usage.completion_tokens = u->value("completion_tokens", 0);
    if (auto d = u->find("prompt_tokens_details"); d != u->end() && d->is_object()) {
      const auto c = d->find("cached_tokens");
      if (c != d->end() && c->is_number_integer()) usage.cached_tokens = c->get<int32_t>();
    }
    last.usage = usage;
  }
  return Status::ok();
}

// One streamed event of SGLang's /generate: output_ids (the new ids, or all so far: SGLang
// versions and --incremental-streaming-output differ, so the count of new ones comes from
// meta_info.completion_tokens, and they are the last of output_ids), meta_info.finish_reason
// ({"type": "stop" | "length" | "abort", ...} or null) and the usage counts in meta_info.
Status readSglangEvent(const json& j, int64_t& generated, runtime::GenerateChunk& out, runtime::GenerateChunk& last,
                       std::optional<runtime::FinishReason>& finish) {
  const auto meta = j.find("meta_info");
  if (meta == j.end() || !meta->is_object()) return unavailable("upstream (SGLang /generate) sent an event without meta_info");
  const auto count = meta->find("completion_tokens");
  if (count == meta->end() || !count->is_number_integer()) {
    return unavailable("upstream (SGLang /generate) sent no meta_info.completion_tokens");
  }
  const int64_t fresh = count->get<int64_t>() - generated;
  if (fresh > 0) {
    const auto ids = j.find("output_ids");
    if (ids == j.end() || !ids->is_array()) {
      return unavailable("upstream (SGLang /generate) returned no output_ids (SGLang 0.4.7 or later returns them)");
    }
    if (static_cast<int64_t>(ids->size()) < fresh) {
      return unavailable("upstream (SGLang /generate) sent " + std::to_string(ids->size()) + " output_ids for " +
                         std::to_string(fresh) + " new tokens");
    }
    TURBINE_RETURN_IF_ERROR(readTokenIds(*ids, out.token_ids, ids->size() - static_cast<size_t>(fresh)));
    generated += fresh;
  }
  if (const auto f = meta->find("finish_reason"); f != meta->end() && f->is_object()) {
    const std::string type = f->value("type", std::string("stop"));
    if (type == "abort") {
      // The engine ended it (not our abort, which closes the connection): say why.
      const std::string why = f->contains("message") && (*f)["message"].is_string()
                                  ? (*f)["message"].get<std::string>()
                                  : std::string("no reason given");
      const int code = f->contains("status_code") && (*f)["status_code"].is_number_integer()
                           ? (*f)["status_code"].get<int>()
                           : 500;
      std::string m = "upstream aborted the request: " + why;
      return code >= 400 && code < 500 ? invalidArgument(std::move(m)) : internalError(std::move(m));
    }
    finish = finishFrom(type);
  }
  runtime::Usage usage;
  usage.prompt_tokens = meta->value("prompt_tokens", 0);
  usage.completion_tokens = static_cast<int32_t>(generated);
  usage.cached_tokens = meta->value("cached_tokens", 0);
  last.usage = usage;
  return Status::ok();
}

// The names an API gives the options that differ between vLLM's completions and SGLang's
// sampling_params.
struct OptionNames {
  const char* max_tokens;
  const char* seed;
  const char* min_tokens;
};
constexpr OptionNames kOpenAiNames{"max_tokens", "seed", "min_tokens"};
constexpr OptionNames kSglangNames{"max_new_tokens", "sampling_seed", "min_new_tokens"};

// The request's sampling and stop options; defaults are left out. An unset max_tokens is what
// fits in max_model_len (vLLM's completions would stop at 16, SGLang at 128).
json samplingOptions(const runtime::GenerateRequest& r, const UpstreamOptions& o, const OptionNames& names) {
  json b = json::object();
  if (r.stop.max_tokens) {
    b[names.max_tokens] = *r.stop.max_tokens;
  } else if (o.max_model_len > 0) {
    b[names.max_tokens] = std::max<int64_t>(1, int64_t{o.max_model_len} - static_cast<int64_t>(r.token_ids.size()));
  }
  const auto& s = r.sampling;
  b["temperature"] = s.temperature;
  b["top_p"] = s.top_p;
  if (s.top_k > 0) b["top_k"] = s.top_k;
  if (s.min_p > 0) b["min_p"] = s.min_p;
  if (s.seed) b[names.seed] = *s.seed;
  if (s.repetition_penalty != 1.0f) b["repetition_penalty"] = s.repetition_penalty;
  if (s.presence_penalty != 0.0f) b["presence_penalty"] = s.presence_penalty;
  if (s.frequency_penalty != 0.0f) b["frequency_penalty"] = s.frequency_penalty;
  if (!s.logit_bias.empty()) {
    json lb = json::object();
    for (const auto& [id, bias] : s.logit_bias) lb[std::to_string(id)] = bias;
    b["logit_bias"] = std::move(lb);
  }
  if (!r.stop.stop_token_ids.empty()) b["stop_token_ids"] = r.stop.stop_token_ids;
  if (r.stop.ignore_eos) b["ignore_eos"] = true;
  if (r.stop.min_tokens > 0) b[names.min_tokens] = r.stop.min_tokens;
  return b;
}

}  // namespace

json UpstreamClient::requestBody(const runtime::GenerateRequest& r, const UpstreamOptions& o) {
  if (o.api == UpstreamApi::kSglang) {  // SGLang's /generate
    json b = json::object();
    b["input_ids"] = r.token_ids;
    b["sampling_params"] = samplingOptions(r, o, kSglangNames);
    b["stream"] = true;
    return b;
  }
  json b = samplingOptions(r, o, kOpenAiNames);  // vLLM's /v1/completions
  b["model"] = o.model;
  b["prompt"] = r.token_ids;
  b["stream"] = true;
  b["stream_options"] = {{"include_usage", true}};
  b["return_token_ids"] = true;
  if (!r.cache_salt.empty()) b["cache_salt"] = r.cache_salt;
  return b;
}

struct UpstreamClient::Impl {
  struct Call {
    runtime::GenerateRequest request;
    runtime::ChunkCallback on_chunk;
    std::optional<beast::tcp_stream> stream;  // set once the coroutine starts
    bool aborted = false;
    int64_t tokens = 0;  // prompt + generated so far (guarded by mu)
    int64_t blocks = 0;  // ceil(tokens / block_size), counted in blocks_used (guarded by mu)
    int64_t generated = 0;  // tokens received (the I/O thread's)
  };

  UpstreamOptions options;
  HttpUrl url;
  std::string host_header;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;

  mutable std::mutex mu;  // guards calls, stopping, blocks_used, the calls' tokens and blocks
  std::condition_variable idle;
  std::unordered_map<std::string, std::shared_ptr<Call>> calls;
  bool stopping = false;
  int64_t blocks_used = 0;
  std::function<void()> on_change;  // set before the first request

  // Under mu: the call holds `tokens` tokens now.
  void account(Call& call, int64_t tokens) {
    const int64_t bs = std::max<int32_t>(options.block_size, 1);
    const int64_t blocks = (tokens + bs - 1) / bs;
    blocks_used += blocks - call.blocks;
    call.tokens = tokens;
    call.blocks = blocks;
  }

  void start() {
    work.emplace(io.get_executor());
    thread = std::thread([this] { io.run(); });
  }

  void finishCall(const std::shared_ptr<Call>& call, runtime::GenerateChunk&& last) {
    call->on_chunk(std::move(last));
    {
      std::lock_guard lock(mu);
      account(*call, 0);
      calls.erase(call->request.request_id);
      if (calls.empty()) idle.notify_all();
    }
    if (on_change) on_change();
  }

  // Connects, sends, reads the stream; returns the final chunk.
  asio::awaitable<runtime::GenerateChunk> exchange(std::shared_ptr<Call> call) {
    runtime::GenerateChunk last;
    auto fail = [&](Status st) {
      last.finish = call->aborted ? runtime::FinishReason::kAbort : runtime::FinishReason::kError;
      if (!call->aborted) last.error = std::move(st);
      return std::move(last);
    };
    beast::error_code ec;
    auto executor = co_await asio::this_coro::executor;
    asio::ip::tcp::resolver resolver(executor);
    auto endpoints = co_await resolver.async_resolve(url.host, url.port, redirect(ec));
    if (ec) co_return fail(unavailable("upstream " + host_header + ": " + ec.message()));
    if (call->aborted) co_return fail(cancelled("aborted"));
    call->stream.emplace(executor);
    beast::tcp_stream& s = *call->stream;
    s.expires_after(seconds(options.connect_timeout_s));
    co_await s.async_connect(endpoints, redirect(ec));
    if (ec) co_return fail(unavailable("cannot connect to upstream " + host_header + ": " + ec.message()));

    const char* path = options.api == UpstreamApi::kSglang ? "/generate" : "/v1/completions";
    http::request<http::string_body> req{http::verb::post, url.base_path + path, 11};
    req.set(http::field::host, host_header);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    req.set("X-Request-Id", call->request.request_id);
    req.keep_alive(false);
    req.body() = requestBody(call->request, options).dump();
    req.prepare_payload();
    // An abort cancels the operation in progress; one that comes while a completed operation's
    // handler waits to run finds none, so `aborted` is checked before each next operation.
    if (call->aborted) co_return fail(cancelled("aborted"));
    s.expires_after(seconds(options.response_timeout_s));
    co_await http::async_write(s, req, redirect(ec));
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> p;
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (call->aborted) co_return fail(cancelled("aborted"));
    if (!ec) co_await http::async_read_header(s, buf, p, redirect(ec));
    if (ec) co_return fail(unavailable("upstream " + host_header + " did not answer: " + ec.message()));
    const unsigned status = p.get().result_int();

    SseFramer framer;
    std::string error_body;
    std::vector<char> chunk(kReadChunk);
    std::optional<runtime::FinishReason> finish;
    bool done = false;
    while (!p.is_done() && !done) {
      if (call->aborted) co_return fail(cancelled("aborted"));
      p.get().body().data = chunk.data();
      p.get().body().size = chunk.size();
      s.expires_after(seconds(options.response_timeout_s));
      co_await http::async_read_some(s, buf, p, redirect(ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        co_return fail(unavailable("upstream stream cut: " + (ec == beast::error::timeout ? std::string("timed out")
                                                                                          : ec.message())));
      }
      const size_t n = chunk.size() - p.get().body().size;
      if (status != 200) {
        error_body.append(chunk.data(), std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, error_body.size())));
        continue;
      }
      for (const std::string& data : framer.feed(std::string_view(chunk.data(), n))) {
        if (data == "[DONE]") {
          done = true;
          break;
        }
        const json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
        if (!j.is_object()) co_return fail(unavailable("upstream sent malformed data: " + data.substr(0, 120)));
        if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
          co_return fail(internalError("upstream error: " + errorMessage(data)));
        }
        runtime::GenerateChunk out;
        const Status parsed = options.api == UpstreamApi::kSglang ? readSglangEvent(j, call->generated, out, last, finish)
                                                                  : readOpenAiEvent(j, out, last, finish);
        if (!parsed.isOk()) co_return fail(parsed);
        if (!out.token_ids.empty()) {
          {
            std::lock_guard lock(mu);
            account(*call, call->tokens + static_cast<int64_t>(out.token_ids.size()));
          }
          call->on_chunk(std::move(out));
        }
      }
    }
    if (status != 200) co_return fail(httpError(status, error_body));
    if (call->aborted) co_return fail(cancelled("aborted"));
    if (!finish) co_return fail(unavailable("upstream ended the stream without a finish reason"));
    last.finish = *finish;
    co_return std::move(last);
  }

  void launch(const std::shared_ptr<Call>& call) {
    asio::co_spawn(io, exchange(call), [this, call](std::exception_ptr e, runtime::GenerateChunk last) {
      if (e) {
        last = runtime::GenerateChunk{};
        last.finish = runtime::FinishReason::kError;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          last.error = internalError(std::string("upstream request failed: ") + ex.what());
        } catch (...) {
          last.error = internalError("upstream request failed");
        }
      }
      if (call->stream) {
        beast::error_code ignored;
        call->stream->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        call->stream->close();
      }
      finishCall(call, std::move(last));
    });
  }

  // On the I/O thread.
  void abortCall(const std::string& id) {
    std::shared_ptr<Call> call;
    {
      std::lock_guard lock(mu);
      auto it = calls.find(id);
      if (it == calls.end()) return;
      call = it->second;
    }
    call->aborted = true;
    if (call->stream) call->stream->cancel();
  }
};

Result<std::shared_ptr<UpstreamClient>> UpstreamClient::create(UpstreamOptions options) {
  auto impl = std::make_unique<Impl>();
  TURBINE_ASSIGN_OR_RETURN(impl->url, parseHttpUrl(options.url, "--upstream"));
  if (options.max_in_flight < 1) return invalidArgument("upstream: max_in_flight must be at least 1");
  if (options.model.empty()) return invalidArgument("upstream: no model name to send");
  if (options.block_size < 1) return invalidArgument("upstream: block_size must be at least 1");
  impl->host_header = impl->url.host + ":" + impl->url.port;
  impl->options = std::move(options);
  impl->start();
  return std::shared_ptr<UpstreamClient>(new UpstreamClient(std::move(impl)));
}

UpstreamClient::UpstreamClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UpstreamClient::~UpstreamClient() { shutdown(); }

Status UpstreamClient::generate(runtime::GenerateRequest request, runtime::ChunkCallback on_chunk) {
  if (!on_chunk) return invalidArgument("upstream worker: no chunk callback");
  if (request.sampling.prompt_logprobs >= 0) {
    return invalidArgument("prompt logprobs are not supported through an upstream worker");
  }
  if (request.sampling.logprobs >= 0) {
    return invalidArgument("logprobs are not supported through an upstream worker");
  }
  if (request.token_ids.empty()) return invalidArgument("upstream worker: empty prompt");
  if (request.constraint) {
    // vLLM and SGLang name these differently from version to version: refused, never ignored.
    return invalidArgument("structured output (response_format, guided_*, tool_choice required or named) "
                           "is not supported through an upstream worker");
  }
  if (impl_->options.api == UpstreamApi::kSglang && !request.cache_salt.empty()) {
    // (the router would keep the tenants apart, the engine's cache would not)
    return invalidArgument("cache_salt is not supported through an SGLang upstream worker");
  }
  auto call = std::make_shared<Impl::Call>();
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return unavailable("upstream worker is shut down");
    if (impl_->calls.size() >= static_cast<size_t>(impl_->options.max_in_flight)) {
      return resourceExhausted("upstream worker: " + std::to_string(impl_->calls.size()) + " requests in flight");
    }
    if (impl_->calls.count(request.request_id) != 0) {
      return invalidArgument("request id already in flight: " + request.request_id);
    }
    call->request = std::move(request);
    call->on_chunk = std::move(on_chunk);
    impl_->account(*call, static_cast<int64_t>(call->request.token_ids.size()));
    impl_->calls.emplace(call->request.request_id, call);
  }
  asio::post(impl_->io, [impl = impl_.get(), call] { impl->launch(call); });
  if (impl_->on_change) impl_->on_change();
  return Status::ok();
}

UpstreamClient::Load UpstreamClient::load() const {
  std::lock_guard lock(impl_->mu);
  Load l;
  l.running = static_cast<int32_t>(impl_->calls.size());
  l.kv_blocks_used = static_cast<int32_t>(impl_->blocks_used);
  return l;
}

void UpstreamClient::setOnChange(std::function<void()> on_change) {
  std::lock_guard lock(impl_->mu);
  impl_->on_change = std::move(on_change);
}

void UpstreamClient::abort(const std::string& request_id) {
  asio::post(impl_->io, [impl = impl_.get(), request_id] { impl->abortCall(request_id); });
}

Result<std::pair<unsigned, std::string>> UpstreamClient::get(const std::string& path) const {
  asio::io_context io;
  beast::tcp_stream s(io);
  beast::error_code ec;
  std::pair<unsigned, std::string> result{0, {}};
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::ip::tcp::resolver resolver(io);
        auto endpoints = co_await resolver.async_resolve(impl_->url.host, impl_->url.port, redirect(ec));
        if (ec) co_return;
        s.expires_after(std::chrono::seconds(5));
        co_await s.async_connect(endpoints, redirect(ec));
        if (ec) co_return;
        http::request<http::empty_body> req{http::verb::get, impl_->url.base_path + path, 11};
        req.set(http::field::host, impl_->host_header);
        req.keep_alive(false);
        co_await http::async_write(s, req, redirect(ec));
        if (ec) co_return;
        beast::flat_buffer buf;
        http::response_parser<http::string_body> parser;
        parser.body_limit(kMaxGetBody);
        co_await http::async_read(s, buf, parser, redirect(ec));
        if (ec) co_return;
        result = {parser.get().result_int(), std::move(parser.get().body())};
      },
      asio::detached);
  io.run();
  if (ec) return unavailable("upstream " + impl_->host_header + " " + path + ": " + ec.message());
  return result;
}

Status UpstreamClient::health() {
  TURBINE_ASSIGN_OR_RETURN(auto res, get("/health"));
  if (res.first != 200) {
    return unavailable("upstream " + impl_->host_header + " health: HTTP " + std::to_string(res.first));
  }
  return Status::ok();
}

Result<std::string> UpstreamClient::metrics() const {
  TURBINE_ASSIGN_OR_RETURN(auto res, get("/metrics"));
  if (res.first != 200) {
    return notFound("upstream " + impl_->host_header + " /metrics: HTTP " + std::to_string(res.first) +
                    (impl_->options.api == UpstreamApi::kSglang ? " (start SGLang with --enable-metrics)" : ""));
  }
  return std::move(res.second);
}

void UpstreamClient::shutdown() {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping && !impl_->thread.joinable()) return;
    impl_->stopping = true;
    for (const auto& [id, call] : impl_->calls) ids.push_back(id);
  }
  for (const auto& id : ids) abort(id);
  {
    std::unique_lock lock(impl_->mu);
    impl_->idle.wait_for(lock, std::chrono::seconds(30), [&] { return impl_->calls.empty(); });
  }
  impl_->work.reset();
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace turbine::worker
