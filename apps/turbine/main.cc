// The single `turbine` binary: parses the command line and runs one subcommand.
#include <cstdio>

#include "commands.h"
#include "engine/cpu/kernels.h"

namespace turbine::app {

int reportError(const char* command, const Status& status) {
  std::fprintf(stderr, "turbine %s: error: %s\n", command, status.message().c_str());
  return 1;
}

void addVersionCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("version", "Print the version and exit");
  cmd->callback([&exit_code] {
    std::printf("turbine %s\n", TURBINE_VERSION);
    exit_code = 0;
  });
}

}  // namespace turbine::app

int main(int argc, char** argv) {
  turbine::engine::cpu::reexecForBlasCore(argv);
  using namespace turbine::app;
  CLI::App app{"Turbine: an LLM inference serving framework"};
  app.require_subcommand(1);
  app.set_version_flag("--version", TURBINE_VERSION);
  int exit_code = 0;
  addVersionCommand(app, exit_code);
  addMakeModelCommand(app, exit_code);
  addBenchCommand(app, exit_code);
  addGenerateCommand(app, exit_code);
  addSimulateCommand(app, exit_code);
  addServeCommand(app, exit_code);
  addWorkerCommand(app, exit_code);
  addFrontendCommand(app, exit_code);
  addPlannerCommand(app, exit_code);
  addProfileCommand(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error is one line on stderr and exit code 2.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "turbine: error: %s (see --help)\n", e.what());
    return 2;
  }
  return exit_code;
}
