#include "frontend/openai_server.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frontend/errors.h"
#include "frontend/generation_job.h"
#include "frontend/openai_protocol.h"

namespace turbine::frontend {
namespace {

using json = nlohmann::json;
using Responder = std::shared_ptr<HttpResponder>;

int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string dumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A prompt's token ids and how they count against the context.
struct PreparedPrompt {
  std::vector<int32_t> ids;
};

}  // namespace

class OpenAiServer::Handlers {
 public:
  explicit Handlers(OpenAiServer* server) : s_(*server) {
    std::random_device rd;
    id_salt_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }

  void handle(HttpRequest req, Responder r) {
    const std::string& path = req.path;
    std::string endpoint = knownEndpoint(path);
    if (endpoint.empty()) {
      return sendError(r, "other", notFoundError("Not found: " + path, "not_found"));
    }
    bool is_get = endpoint == "/v1/models" || endpoint == "/health" || endpoint == "/metrics";
    if (req.method != (is_get ? "GET" : "POST")) {
      ApiError e = badRequest(fmt::format("method {} is not allowed on {}", req.method, path));
      e.http_status = 405;
      return sendError(r, endpoint, e);
    }
    bool needs_auth = endpoint != "/health" && endpoint != "/metrics";
    if (needs_auth && !authorized(req)) return sendError(r, endpoint, unauthorizedError());
    if (endpoint == "/v1/models") return models(r);
    if (endpoint == "/health") return health(r);
    if (endpoint == "/metrics") return metricsPage(r);
    auto body = parseJsonObject(req.body);
    if (!body) return sendError(r, endpoint, apiErrorFromStatus(body.status()));
    if (endpoint == "/v1/chat/completions") return chat(req, *body, r);
    if (endpoint == "/v1/completions") return completions(req, *body, r);
    if (endpoint == "/tokenize") return tokenize(req, *body, r);
    return detokenize(*body, r);
  }

 private:
  static std::string knownEndpoint(const std::string& path) {
    static const char* kPaths[] = {"/v1/models", "/v1/chat/completions", "/v1/completions",
                                   "/tokenize", "/detokenize", "/health", "/metrics"};
    std::string p = path.size() > 1 && path.back() == '/' ? path.substr(0, path.size() - 1) : path;
    for (const char* k : kPaths) {
      if (p == k) return p;
    }
    return {};
  }

  bool authorized(const HttpRequest& req) const {
    if (s_.options_.api_key.empty()) return true;
    std::string_view auth = req.header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.substr(0, kBearer.size()) != kBearer) return false;
    return constantTimeEquals(auth.substr(kBearer.size()), s_.options_.api_key);
  }

  void sendJson(const Responder& r, const std::string& endpoint, std::string body) {
    s_.metrics_.recordRequest(endpoint, 200);
    r->send(200, "application/json", std::move(body));
  }

  void sendError(const Responder& r, const std::string& endpoint, const ApiError& e) {
    s_.metrics_.recordRequest(endpoint, e.http_status);
    HttpHeaders extra;
    if (e.retry_after_s > 0) extra.emplace_back("Retry-After", std::to_string(e.retry_after_s));
    r->send(e.http_status, "application/json", errorBody(e), extra);
  }

  // The card of `name`, or the first model when `name` is empty and `allow_default`.
  Result<ModelCard> findModel(const std::string& name, bool allow_default) const {
    auto cards = s_.backend_->models();
    if (name.empty() && allow_default && !cards.empty()) return cards.front();
    for (auto& c : cards) {
      if (c.id == name) return c;
    }
    return notFound(fmt::format("The model '{}' does not exist.", name));
  }

  void models(const Responder& r) {
    json data = json::array();
    for (const auto& c : s_.backend_->models()) {
      data.push_back({{"id", c.id}, {"object", "model"}, {"created", c.created},
                      {"owned_by", c.owned_by}, {"max_model_len", c.max_model_len}});
    }
    sendJson(r, "/v1/models", dumpJson({{"object", "list"}, {"data", data}}));
  }

  void health(const Responder& r) {
    Status st = s_.backend_->health();
    if (!st.isOk()) return sendError(r, "/health", apiErrorFromStatus(unavailable(st.message()), {}, s_.options_.retry_after_s));
    s_.metrics_.recordRequest("/health", 200);
    r->send(200, "application/json", "{}");
  }

  void metricsPage(const Responder& r) {
    s_.metrics_.recordRequest("/metrics", 200);
    r->send(200, "text/plain; version=0.0.4; charset=utf-8", s_.metrics_.render(s_.backend_->stats()));
  }

  // Checks the prompt against the context and fills max_tokens.
  static Status fitContext(const ModelCard& card, size_t prompt_len, std::optional<int32_t> max_tokens,
                           const char* what, int32_t* out_max_tokens) {
    int64_t limit = card.max_model_len;
    auto p = static_cast<int64_t>(prompt_len);
    if (p >= limit) {
      return invalidArgument(fmt::format(
          "This model's maximum context length is {} tokens. However, your {} has {} tokens, "
          "which leaves no room for a completion. Please reduce the length of the {}.",
          limit, what, p, what));
    }
    if (max_tokens && p + *max_tokens > limit) {
      return invalidArgument(fmt::format(
          "This model's maximum context length is {} tokens. However, you requested {} tokens "
          "({} in the {}, {} in the completion). Please reduce the length of the {} or completion.",
          limit, p + *max_tokens, p, what, *max_tokens, what));
    }
    *out_max_tokens = max_tokens ? *max_tokens : static_cast<int32_t>(limit - p);
    return Status::ok();
  }

  std::string newId(const char* prefix) {
    uint64_t n = counter_.fetch_add(1) + 1;
    return fmt::format("{}{:016x}{:08x}", prefix, id_salt_ ^ (n * 0x9E3779B97F4A7C15ull), static_cast<uint32_t>(n));
  }

  GenerateRequest baseRequest(const CommonParams& p, const std::string& model) const {
    GenerateRequest g;
    g.model = model;
    g.sampling = p.sampling;
    g.stop.min_tokens = p.min_tokens;
    g.stop.ignore_eos = p.ignore_eos;
    g.stop.stop_token_ids = p.stop_token_ids;
    g.cache_salt = p.cache_salt;
    g.constraint = p.constraint;
    return g;
  }

  // Adds n samples of one prompt to `job`; sample i > 0 gets seed + i so samples differ.
  // The markers that are one token of the model's vocabulary which its detokenizer skips
  // (a special token, as Mistral's [TOOL_CALLS] is): their ids and text. A property of the model
  // and the server's parsers, worked out on a model's first such request and kept.
  std::vector<std::pair<int32_t, std::string>> skippedMarkers(const std::string& model,
                                                              const std::vector<std::string_view>& markers) {
    {
      std::lock_guard lock(markers_mu_);
      if (auto it = skipped_markers_.find(model); it != skipped_markers_.end()) return it->second;
    }
    std::vector<std::pair<int32_t, std::string>> out;
    for (std::string_view marker : markers) {
      auto ids = s_.backend_->tokenize(model, std::string(marker), false);
      if (!ids || ids->size() != 1) continue;
      auto d = s_.backend_->newDetokenizer(model);
      if ((d->push(ids->front()) + d->flush()).empty()) out.emplace_back(ids->front(), std::string(marker));
    }
    std::lock_guard lock(markers_mu_);
    skipped_markers_.emplace(model, out);
    return out;
  }

  // `display`: completions' echo (the prompt's text before each sample's), prompt logprobs.
  static void addSamples(GenerationJob& job, const GenerateRequest& base, const CommonParams& p,
                         const std::string& id, int32_t first_index, const PromptDisplay& display = {}) {
    for (int32_t i = 0; i < p.n; ++i) {
      GenerateRequest g = base;
      g.request_id = fmt::format("{}-{}", id, first_index + i);
      if (g.sampling.seed && i > 0) g.sampling.seed = *g.sampling.seed + i;
      job.addSequence(std::move(g), p.stop, i == 0, display);
    }
  }

  void startJob(const std::shared_ptr<GenerationJob>& job, const std::string& endpoint,
                const Responder& r, int64_t prompt_tokens) {
    Status st = job->start();
    s_.metrics_.recordAdmission(st.isOk());
    if (!st.isOk()) return sendError(r, endpoint, apiErrorFromStatus(st, {}, s_.options_.retry_after_s));
    s_.metrics_.addPromptTokens(prompt_tokens);
  }

  void chat(const HttpRequest& req, const json& body, const Responder& r) {
    const std::string endpoint = "/v1/chat/completions";
    std::string param;
    auto parsed = parseChatCompletionRequest(body, &param, req.body);
    if (!parsed) return sendError(r, endpoint, apiErrorFromStatus(parsed.status(), param));
    ChatCompletionRequest& c = *parsed;
    if (c.tool_choice == "auto" && !s_.options_.tool_call_format) {
      return sendError(r, endpoint, apiErrorFromStatus(invalidArgument("\"auto\" tool choice requires "
                                                                       "--enable-auto-tool-choice and "
                                                                       "--tool-call-parser to be set"),
                                                       "tool_choice"));
    }
    auto card = findModel(c.common.model, false);
    if (!card) return sendError(r, endpoint, modelNotFound(card.status()));
    auto text = s_.backend_->renderChat(card->id, c.messages, {c.add_generation_prompt, c.tools, c.template_extra});
    if (!text) return sendError(r, endpoint, apiErrorFromStatus(text.status(), "messages"));
    auto ids = s_.backend_->tokenize(card->id, *text, false);
    if (!ids) return sendError(r, endpoint, apiErrorFromStatus(ids.status(), "messages"));
    GenerateRequest base = baseRequest(c.common, card->id);
    Status fit = fitContext(*card, ids->size(), c.common.max_tokens, "messages", &base.stop.max_tokens);
    if (!fit.isOk()) return sendError(r, endpoint, apiErrorFromStatus(fit, "messages"));
    base.prompt_token_ids = std::move(ids).value();
    ResponseMeta meta{newId("chatcmpl-"), unixNow(), card->id, false};
    auto job = std::make_shared<GenerationJob>(jobContext(), ApiKind::kChat, meta, c.common.stream,
                                               c.common.include_usage, endpoint, req.received, r);
    if (c.tool_choice == "auto") job->readToolCalls(*s_.options_.tool_call_format, c.parallel_tool_calls);
    if (c.tool_choice == "required") job->readForcedToolCalls("");
    if (c.tool_choice == "function") job->readForcedToolCalls(c.named_tool);
    if (s_.options_.reasoning_format) job->readReasoning(*s_.options_.reasoning_format);
    if (c.tool_choice == "auto" || s_.options_.reasoning_format) {
      // The model's list covers every marker of the server's parsers; this request gets those of
      // the parsers it uses.
      std::vector<std::string_view> all, used;
      if (s_.options_.tool_call_format) all = toolCallMarkers(*s_.options_.tool_call_format);
      if (c.tool_choice == "auto") used = all;
      if (s_.options_.reasoning_format) {
        for (std::string_view m : reasoningMarkers(*s_.options_.reasoning_format)) {
          all.push_back(m);
          used.push_back(m);
        }
      }
      auto markers = skippedMarkers(card->id, all);
      std::erase_if(markers, [&](const auto& m) { return std::find(used.begin(), used.end(), m.second) == used.end(); });
      job->putBackMarkers(std::move(markers));
    }
    addSamples(*job, base, c.common, meta.id, 0, PromptDisplay{{}, false, c.common.prompt_logprobs.has_value()});
    startJob(job, endpoint, r, static_cast<int64_t>(base.prompt_token_ids.size()));
  }

  void completions(const HttpRequest& req, const json& body, const Responder& r) {
    const std::string endpoint = "/v1/completions";
    std::string param;
    auto parsed = parseCompletionRequest(body, &param, req.body);
    if (!parsed) return sendError(r, endpoint, apiErrorFromStatus(parsed.status(), param));
    const CompletionRequest& c = *parsed;
    auto card = findModel(c.common.model, false);
    if (!card) return sendError(r, endpoint, modelNotFound(card.status()));
    ResponseMeta meta{newId("cmpl-"), unixNow(), card->id, false};
    auto job = std::make_shared<GenerationJob>(jobContext(), ApiKind::kCompletion, meta, c.common.stream,
                                               c.common.include_usage, endpoint, req.received, r);
    int64_t prompt_tokens = 0;
    for (size_t i = 0; i < c.prompts.size(); ++i) {
      std::string name = c.prompts.size() > 1 ? fmt::format("prompt[{}]", i) : "prompt";
      auto ids = promptIds(*card, c.prompts[i], name);
      if (!ids) return sendError(r, endpoint, apiErrorFromStatus(ids.status(), name));
      GenerateRequest base = baseRequest(c.common, card->id);
      // max_tokens 0 (only with echo): the prompt alone; one token is generated and dropped.
      const bool echo_only = c.common.max_tokens == 0;
      const auto max_tokens = echo_only ? std::optional<int32_t>(1) : c.common.max_tokens;
      Status fit = fitContext(*card, ids->size(), max_tokens, "prompt", &base.stop.max_tokens);
      if (!fit.isOk()) return sendError(r, endpoint, apiErrorFromStatus(fit, name));
      if (echo_only) base.stop.min_tokens = 0;
      prompt_tokens += static_cast<int64_t>(ids->size());
      PromptDisplay display{{}, echo_only, c.common.prompt_logprobs.has_value()};
      if (c.echo) {
        auto text = c.prompts[i].is_tokens ? s_.backend_->detokenize(card->id, *ids) : Result<std::string>(c.prompts[i].text);
        if (!text) return sendError(r, endpoint, apiErrorFromStatus(text.status(), name));
        display.echo = std::move(text).value();
      }
      base.prompt_token_ids = std::move(ids).value();
      addSamples(*job, base, c.common, meta.id, static_cast<int32_t>(i) * c.common.n, display);
    }
    startJob(job, endpoint, r, prompt_tokens);
  }

  Result<std::vector<int32_t>> promptIds(const ModelCard& card, const PromptInput& p, const std::string& name) {
    if (!p.is_tokens) return s_.backend_->tokenize(card.id, p.text, true);
    for (size_t k = 0; k < p.token_ids.size(); ++k) {
      if (card.vocab_size > 0 && p.token_ids[k] >= card.vocab_size) {
        return invalidArgument(fmt::format("'{}[{}]': token id {} is out of range [0, {})", name, k,
                                           p.token_ids[k], card.vocab_size));
      }
    }
    return p.token_ids;
  }

  void tokenize(const HttpRequest& req, const json& body, const Responder& r) {
    const std::string endpoint = "/tokenize";
    std::string model;
    if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
      if (!it->is_string()) return sendError(r, endpoint, badRequest("'model': expected string", "model"));
      model = it->get<std::string>();
    }
    auto card = findModel(model, true);
    if (!card) return sendError(r, endpoint, modelNotFound(card.status()));
    bool has_messages = body.contains("messages");
    bool add_special = !has_messages;
    bool add_generation_prompt = true;
    for (auto [key, out] : {std::pair{"add_special_tokens", &add_special},
                            std::pair{"add_generation_prompt", &add_generation_prompt}}) {
      if (auto it = body.find(key); it != body.end() && !it->is_null()) {
        if (!it->is_boolean()) return sendError(r, endpoint, badRequest(fmt::format("'{}': expected boolean", key), key));
        *out = it->get<bool>();
      }
    }
    std::string text;
    if (has_messages) {
      std::string param;
      auto messages = parseMessages(body["messages"], &param);
      if (!messages) return sendError(r, endpoint, apiErrorFromStatus(messages.status(), param));
      auto tools = parseTools(body, req.body, &param);
      if (!tools) return sendError(r, endpoint, apiErrorFromStatus(tools.status(), param));
      auto extra = parseTemplateExtra(body, req.body, &param);
      if (!extra) return sendError(r, endpoint, apiErrorFromStatus(extra.status(), param));
      auto rendered = s_.backend_->renderChat(card->id, *messages, {add_generation_prompt, *tools, *extra});
      if (!rendered) return sendError(r, endpoint, apiErrorFromStatus(rendered.status(), "messages"));
      text = std::move(rendered).value();
    } else {
      auto it = body.find("prompt");
      if (it == body.end() || !it->is_string()) {
        return sendError(r, endpoint, badRequest("'prompt': expected string (or give 'messages')", "prompt"));
      }
      text = it->get<std::string>();
    }
    auto ids = s_.backend_->tokenize(card->id, text, add_special);
    if (!ids) return sendError(r, endpoint, apiErrorFromStatus(ids.status(), "prompt"));
    json out = {{"count", ids->size()}, {"max_model_len", card->max_model_len}, {"tokens", *ids}};
    sendJson(r, endpoint, dumpJson(out));
  }

  void detokenize(const json& body, const Responder& r) {
    const std::string endpoint = "/detokenize";
    std::string model;
    if (auto it = body.find("model"); it != body.end() && it->is_string()) model = it->get<std::string>();
    auto card = findModel(model, true);
    if (!card) return sendError(r, endpoint, modelNotFound(card.status()));
    auto it = body.find("tokens");
    if (it == body.end()) return sendError(r, endpoint, badRequest("'tokens': is required", "tokens"));
    std::string param;
    auto ids = parseTokenIds(*it, "tokens", &param);
    if (!ids) return sendError(r, endpoint, apiErrorFromStatus(ids.status(), param));
    auto text = s_.backend_->detokenize(card->id, *ids);
    if (!text) return sendError(r, endpoint, apiErrorFromStatus(text.status(), "tokens"));
    sendJson(r, endpoint, dumpJson({{"prompt", *text}}));
  }

  static ApiError modelNotFound(const Status& st) {
    ApiError e = apiErrorFromStatus(st, "model");
    e.code = "model_not_found";
    return e;
  }

  JobContext jobContext() const {
    return JobContext{s_.backend_.get(), &s_.metrics_, &s_.active_jobs_, s_.options_.retry_after_s};
  }

  OpenAiServer& s_;
  std::mutex markers_mu_;  // guards skipped_markers_ (requests run on several I/O threads)
  std::map<std::string, std::vector<std::pair<int32_t, std::string>>> skipped_markers_;  // by model
  uint64_t id_salt_ = 0;
  std::atomic<uint64_t> counter_{0};
};

OpenAiServer::OpenAiServer(OpenAiServerOptions options, std::shared_ptr<ServingBackend> backend)
    : options_(std::move(options)), backend_(std::move(backend)),
      handlers_(std::make_unique<Handlers>(this)) {
  http_ = std::make_unique<HttpServer>(options_.http, [this](HttpRequest req, Responder r) {
    handlers_->handle(std::move(req), std::move(r));
  });
}

OpenAiServer::~OpenAiServer() { shutdown(); }

Status OpenAiServer::start() { return http_->start(); }

void OpenAiServer::shutdown() {
  http_->shutdown(options_.shutdown_grace);
}

}  // namespace turbine::frontend
