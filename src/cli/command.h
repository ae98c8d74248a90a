// CLI subcommands register themselves here (one file per command: src/cli/cmd_<name>.cpp),
// and share one argument parser.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace clipserve::cli {

struct Command {
  const char* name;
  const char* summary;
  const char* usage;  ///< full help text printed by `clipserve help NAME` / --help
  std::function<int(int argc, char** argv)> run;  ///< argv[0] is the command name
};

/// Called from a static initializer in each cmd_*.cpp:
///   static const bool registered = register_command({...});
bool register_command(Command cmd);
const std::map<std::string, Command>& commands();

/// Minimal GNU-style parser: --name VALUE, --name=VALUE, boolean --flag, positionals.
/// Options are declared before parse(); unknown options throw Error(kInvalidArgument).
/// "a, b,,c" -> {"a", "b", "c"}: split on commas, blanks around items trimmed, empty dropped.
std::vector<std::string> split_comma_list(const std::string& s);

class Args {
 public:
  Args& option(const std::string& name);  ///< takes a value; may repeat (values())
  Args& flag(const std::string& name);    ///< boolean
  void parse(int argc, char** argv);      ///< argv[0] skipped

  bool has(const std::string& name) const;
  std::optional<std::string> get(const std::string& name) const;
  std::string get_or(const std::string& name, const std::string& fallback) const;
  int get_int(const std::string& name, int fallback) const;
  std::vector<std::string> values(const std::string& name) const;
  /// Comma-separated items of all --name occurrences ("a,b" --name c -> a, b, c), trimmed,
  /// empty items dropped.
  std::vector<std::string> get_list(const std::string& name) const;
  /// Comma-separated integers of all --name occurrences ("1,16").
  std::vector<int> get_int_list(const std::string& name, std::vector<int> fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, bool> takes_value_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace clipserve::cli
