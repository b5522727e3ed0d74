// turbine generate: loads a model and streams one prompt's continuation to stdout, through the
// same Engine that serves requests (so what this prints is what the server would produce).
#include <chrono>
#include <cstdio>
#include <sstream>

#include "commands.h"
#include "engine/engine.h"
#include "engine/llama_model.h"
#include "model/model_loader.h"
#include "model/tokenizer.h"
#include "progress_bar.h"

namespace turbine::app {
namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt;
  std::string prompt_ids;
  int32_t max_tokens = 128;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  std::optional<uint64_t> seed;
  int threads = 0;
  bool print_token_ids = false;
  bool ignore_eos = false;
};

using Clock = std::chrono::steady_clock;

Result<std::vector<int32_t>> parseIds(const std::string& s, int32_t vocab) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      long v = std::stol(item, &used);
      if (used != item.size() || v < 0 || v >= vocab) throw std::out_of_range(item);
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      return invalidArgument("--prompt-ids: '" + item + "' is not a token id in [0, " +
                             std::to_string(vocab) + ")");
    }
  }
  if (ids.empty()) return invalidArgument("--prompt-ids: no token ids given");
  return ids;
}

Status runGenerate(const GenerateArgs& args) {
  ProgressBar bar("loading " + args.model);
  TURBINE_ASSIGN_OR_RETURN(model::ModelInfo info, model::loadModelInfo(args.model));
  TURBINE_ASSIGN_OR_RETURN(model::ModelWeights w,
                           model::loadModel(args.model, [&bar](float f) { bar.update(f); }));
  bar.finish();
  auto weights = std::make_shared<const model::ModelWeights>(std::move(w));
  TURBINE_ASSIGN_OR_RETURN(auto tokenizer, model::Tokenizer::load(args.model));

  std::vector<int32_t> prompt;
  if (!args.prompt_ids.empty()) {
    TURBINE_ASSIGN_OR_RETURN(prompt, parseIds(args.prompt_ids, weights->config.vocab_size));
  } else {
    prompt = tokenizer->encode(args.prompt, /*add_special_tokens=*/true);
    if (prompt.empty()) return invalidArgument("--prompt: the prompt encodes to no tokens");
  }

  engine::LlamaModelOptions mopts;
  mopts.threads = args.threads;
  int32_t need = static_cast<int32_t>(prompt.size()) + args.max_tokens;
  mopts.max_model_len = std::min(weights->config.max_position_embeddings, std::max(need, 1));
  TURBINE_ASSIGN_OR_RETURN(auto runner, engine::LlamaModel::create(weights, mopts));
  engine::EngineOptions eopts;
  eopts.model_id = info.model_id;
  eopts.eos_token_ids = info.eos_token_ids;
  TURBINE_ASSIGN_OR_RETURN(auto eng, engine::Engine::create(std::move(runner), eopts));

  engine::Request req;
  req.request_id = "generate";
  req.token_ids = prompt;
  req.sampling.temperature = args.temperature;
  req.sampling.top_p = args.top_p;
  req.sampling.top_k = args.top_k;
  req.sampling.seed = args.seed;
  req.stop.max_tokens = args.max_tokens;
  req.stop.ignore_eos = args.ignore_eos;

  auto start = Clock::now();
  TURBINE_ASSIGN_OR_RETURN(auto stream, eng->addStream(std::move(req)));
  model::IncrementalDecoder decoder(*tokenizer, /*skip_special_tokens=*/true);
  Clock::time_point first{};
  int64_t generated = 0;
  bool first_id = true;
  Status failure;
  while (auto chunk = stream->next()) {
    if (!chunk->status.isOk()) failure = chunk->status;
    for (int32_t id : chunk->token_ids) {
      if (generated++ == 0) first = Clock::now();
      if (args.print_token_ids) {
        std::printf(first_id ? "%d" : " %d", id);
        first_id = false;
      } else {
        std::string text = decoder.step(id);
        std::fwrite(text.data(), 1, text.size(), stdout);
      }
    }
    std::fflush(stdout);
  }
  auto end = Clock::now();
  if (!args.print_token_ids) {
    std::string rest = decoder.flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
  }
  std::printf("\n");
  if (!failure.isOk()) return failure;

  using Secs = std::chrono::duration<double>;
  double prefill_s = generated > 0 ? Secs(first - start).count() : Secs(end - start).count();
  double decode_s = Secs(end - first).count();
  std::fprintf(stderr, "prompt: %zu tokens, %.1f tokens/s | generation: %lld tokens, %.1f tokens/s\n",
               prompt.size(), prefill_s > 0 ? prompt.size() / prefill_s : 0.0,
               static_cast<long long>(generated),
               (generated > 1 && decode_s > 0) ? (generated - 1) / decode_s : 0.0);
  return Status::ok();
}

}  // namespace

void addGenerateCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("generate", "Stream the continuation of one prompt to stdout");
  auto args = std::make_shared<GenerateArgs>();
  cmd->add_option("--model", args->model, "HF model folder or .gguf file")->required();
  auto* p = cmd->add_option("--prompt", args->prompt, "Prompt text");
  auto* pi = cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt token ids, e.g. 1,2,3");
  p->excludes(pi);
  cmd->add_option("--max-tokens", args->max_tokens, "Tokens to generate at most")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--temperature", args->temperature, "0 = greedy")
      ->check(CLI::Range(0.0f, 100.0f))
      ->capture_default_str();
  cmd->add_option("--top-p", args->top_p)->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "0 = off")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--seed", args->seed, "Sampling seed (reproducible output)");
  cmd->add_option("--threads", args->threads, "Kernel threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_flag("--print-token-ids", args->print_token_ids,
                "Print the generated token ids, space separated, instead of text");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Do not stop at the end-of-sequence token");
  cmd->callback([args, &exit_code, cmd] {
    if (args->prompt.empty() && args->prompt_ids.empty()) {
      std::fprintf(stderr, "turbine generate: error: give --prompt or --prompt-ids (see --help)\n");
      exit_code = 2;
      return;
    }
    if (args->top_p <= 0.0f) {
      std::fprintf(stderr, "turbine generate: error: --top-p must be in (0, 1]\n");
      exit_code = 2;
      return;
    }
    (void)cmd;
    Status st = runGenerate(*args);
    exit_code = st.isOk() ? 0 : reportError("generate", st);
  });
}

}  // namespace turbine::app
