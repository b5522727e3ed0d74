// The single `turbine` binary: subcommands are registered here.
#include <CLI/CLI.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"Turbine: an LLM inference serving framework"};
  app.require_subcommand(1);
  auto* version = app.add_subcommand("version", "Print the version and exit");
  version->callback([] { std::printf("turbine %s\n", TURBINE_VERSION); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return 0;
}
