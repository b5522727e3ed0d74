// turbine make-model: writes a random-weight Llama-architecture model in a real format.
#include <cstdio>

#include "commands.h"
#include "model/make_model.h"
#include "progress_bar.h"

namespace turbine::app {

void addMakeModelCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "make-model", "Write a random-weight Llama-architecture model (HF folder or GGUF)");
  auto opts = std::make_shared<model::MakeModelOptions>();
  cmd->add_option("--preset", opts->preset, "Model size")
      ->check(CLI::IsMember({"tiny", "small", "medium", "large"}))
      ->capture_default_str();
  cmd->add_option("--format", opts->format, "File format")
      ->check(CLI::IsMember({"hf", "gguf"}))
      ->capture_default_str();
  cmd->add_option("--dtype", opts->dtype, "Weight dtype (q8_0: gguf only)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}))
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Seed of the weights")->capture_default_str();
  cmd->add_option("--out", opts->out, "Output folder (hf) or .gguf file / folder (gguf)")
      ->required();
  cmd->callback([opts, &exit_code] {
    if (opts->dtype == "q8_0" && opts->format != "gguf") {
      std::fprintf(stderr, "turbine make-model: error: --dtype q8_0 needs --format gguf\n");
      exit_code = 2;
      return;
    }
    ProgressBar bar("writing " + opts->preset + " weights");
    opts->progress = [&bar](float f) { bar.update(f); };
    Status st = model::makeModel(*opts);
    if (!st.isOk()) {
      exit_code = reportError("make-model", st);
      return;
    }
    bar.finish();
    std::string where = opts->format == "gguf" ? model::ggufOutputPath(opts->out) : opts->out;
    std::fprintf(stderr, "wrote %s %s %s model to %s\n", opts->preset.c_str(),
                 opts->format.c_str(), opts->dtype.c_str(), where.c_str());
    exit_code = 0;
  });
}

}  // namespace turbine::app
