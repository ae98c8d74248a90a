// clipserve command-line entry point: dispatches to the registered subcommands.
#include <cstdio>
#include <cstring>
#include <exception>

#include "cli/command.h"
#include "clipserve/error.h"

namespace {

void print_help() {
  std::printf("clipserve %s: CLIP embeddings, zero-shot classification and serving\n\n",
              CLIPSERVE_VERSION);
  std::printf("usage: clipserve COMMAND [options]\n\ncommands:\n");
  for (const auto& [name, cmd] : clipserve::cli::commands()) {
    std::printf("  %-14s %s\n", name.c_str(), cmd.summary);
  }
  std::printf(
      "\n`clipserve help COMMAND` or `clipserve COMMAND --help` shows a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  const auto& cmds = clipserve::cli::commands();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("clipserve %s\n", CLIPSERVE_VERSION);
    return 0;
  }
  if (!std::strcmp(argv[1], "help")) {
    if (argc >= 3 && cmds.count(argv[2])) {
      std::printf("%s", cmds.at(argv[2]).usage);
      return 0;
    }
    print_help();
    return 0;
  }
  auto it = cmds.find(argv[1]);
  if (it == cmds.end()) {
    std::fprintf(stderr, "clipserve: unknown command '%s' (see clipserve --help)\n", argv[1]);
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("%s", it->second.usage);
      return 0;
    }
  }
  try {
    return it->second.run(argc - 1, argv + 1);
  } catch (const clipserve::Error& e) {
    std::fprintf(stderr, "clipserve %s: error: %s\n", argv[1], e.what());
    return e.code() == clipserve::ErrorCode::kInvalidArgument ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clipserve %s: error: %s\n", argv[1], e.what());
    return 1;
  }
}
