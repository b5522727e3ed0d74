// Subcommands of the `turbine` binary. Each add*Command registers its CLI11 subcommand; the
// callback runs the command and stores the process exit code in `exit_code`
// (0 ok, 1 runtime failure with a one-line message on stderr, 2 usage error).
#pragma once

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace turbine::app {

void addVersionCommand(CLI::App& app, int& exit_code);
void addMakeModelCommand(CLI::App& app, int& exit_code);
void addGenerateCommand(CLI::App& app, int& exit_code);
void addBenchCommand(CLI::App& app, int& exit_code);
void addSimulateCommand(CLI::App& app, int& exit_code);
void addServeCommand(CLI::App& app, int& exit_code);
void addWorkerCommand(CLI::App& app, int& exit_code);
void addFrontendCommand(CLI::App& app, int& exit_code);
void addPlannerCommand(CLI::App& app, int& exit_code);
void addProfileCommand(CLI::App& app, int& exit_code);

// Prints "turbine <command>: error: <message>" on one line and returns 1 (or 2 for
// InvalidArgument raised from command-line values, when usage is true).
int reportError(const char* command, const Status& status);

}  // namespace turbine::app
