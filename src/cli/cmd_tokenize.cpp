// `clipserve tokenize [--context-length N]`: JSONL {"text": ...} on stdin -> JSONL
// {"ids": [...], "truncated": bool} on stdout, one output line per input line.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/command.h"
#include "clipserve/error.h"
#include "clipserve/tokenizer.h"
#include "core/check.h"

namespace clipserve::cli {
namespace {

constexpr const char* kUsage =
    "usage: clipserve tokenize [--context-length N] < input.jsonl > output.jsonl\n"
    "\n"
    "Tokenizes texts exactly as open_clip's SimpleTokenizer (ViT-B-32 and most CLIP models).\n"
    "Input: one JSON object per line with a \"text\" string. Output: one line per input line,\n"
    "  {\"ids\": [49406, ..., 49407], \"truncated\": false}\n"
    "with the start and end tokens and no padding. A text longer than the context keeps its\n"
    "first N ids, the last one replaced by the end token, and says \"truncated\": true.\n"
    "Empty input lines are skipped. A line that cannot be tokenized (bad JSON, no \"text\"\n"
    "string, invalid UTF-8) gives {\"error\": MESSAGE, \"line\": LINE} on stdout and a message on\n"
    "stderr; the remaining lines are still processed and the exit status is 1.\n"
    "\n"
    "options:\n"
    "  --context-length N   context length (default 77, at least 2)\n";

void append_ids(const Tokens& t, std::string& out) {
  out += "{\"ids\":[";
  for (size_t i = 0; i < t.ids.size(); ++i) {
    if (i) out.push_back(',');
    out += std::to_string(t.ids[i]);
  }
  out += "],\"truncated\":";
  out += t.truncated ? "true" : "false";
  out += "}\n";
}

int run(int argc, char** argv) {
  Args args;
  args.option("context-length");
  args.parse(argc, argv);
  CS_CHECK_ARG(args.positional().empty(), "tokenize takes no file arguments (it reads stdin)");
  const int context_length = args.get_int("context-length", 77);
  CS_CHECK_ARG(context_length >= 2, "--context-length must be at least 2, got ", context_length);
  const Tokenizer& tok = Tokenizer::get();

  std::ios::sync_with_stdio(false);
  std::string line, out;
  size_t line_no = 0;
  int failures = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    try {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        CS_THROW(kInvalidArgument, "invalid JSON: ", e.what());
      }
      CS_CHECK_ARG(j.is_object() && j.contains("text") && j["text"].is_string(),
                   "expected an object with a \"text\" string");
      append_ids(tok.encode(j["text"].get_ref<const std::string&>(), context_length), out);
    } catch (const Error& e) {
      ++failures;
      std::fprintf(stderr, "clipserve tokenize: line %zu: %s\n", line_no, e.what());
      out += nlohmann::json{{"error", e.what()}, {"line", line_no}}.dump(
          -1, ' ', false, nlohmann::json::error_handler_t::replace);
      out += "\n";
    }
    if (out.size() > (1 << 16)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return failures ? 1 : 0;
}

const bool registered = register_command(
    {"tokenize", "text -> CLIP token ids (JSONL in, JSONL out), same as open_clip", kUsage, run});

}  // namespace
}  // namespace clipserve::cli
