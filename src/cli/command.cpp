// Command registry and argument parser for the clipserve CLI.
#include "cli/command.h"

#include "core/check.h"

namespace clipserve::cli {

namespace {
std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}
}  // namespace

bool register_command(Command cmd) {
  registry()[cmd.name] = std::move(cmd);
  return true;
}

const std::map<std::string, Command>& commands() { return registry(); }

Args& Args::option(const std::string& name) {
  takes_value_[name] = true;
  return *this;
}

Args& Args::flag(const std::string& name) {
  takes_value_[name] = false;
  return *this;
}

void Args::parse(int argc, char** argv) {
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (only_positional || a.size() < 3 || a.rfind("--", 0) != 0) {
      if (a == "--") {
        only_positional = true;
        continue;
      }
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    auto it = takes_value_.find(name);
    CS_CHECK_ARG(it != takes_value_.end(), "unknown option --", name);
    if (it->second) {
      if (!inline_value) {
        CS_CHECK_ARG(i + 1 < argc, "option --", name, " needs a value");
        value = argv[++i];
      }
      values_[name].push_back(value);
    } else {
      CS_CHECK_ARG(!inline_value, "option --", name, " takes no value");
      values_[name].push_back("1");
    }
  }
}

bool Args::has(const std::string& name) const { return values_.count(name) != 0; }

std::optional<std::string> Args::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::string Args::get_or(const std::string& name, const std::string& fallback) const {
  auto v = get(name);
  return v ? *v : fallback;
}

int Args::get_int(const std::string& name, int fallback) const {
  auto v = get(name);
  if (!v) return fallback;
  try {
    size_t pos = 0;
    int x = std::stoi(*v, &pos);
    CS_CHECK_ARG(pos == v->size(), "option --", name, ": not an integer: ", *v);
    return x;
  } catch (const std::logic_error&) {
    CS_THROW(kInvalidArgument, "option --", name, ": not an integer: ", *v);
  }
}

std::vector<std::string> Args::values(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string> split_comma_list(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(pos, end - pos);
    const auto b = item.find_first_not_of(" \t\r"), e = item.find_last_not_of(" \t\r");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
    pos = end + 1;
  }
  return out;
}

std::vector<std::string> Args::get_list(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& v : values(name)) {
    for (auto& item : split_comma_list(v)) out.push_back(std::move(item));
  }
  return out;
}

std::vector<int> Args::get_int_list(const std::string& name, std::vector<int> fallback) const {
  auto vs = values(name);
  if (vs.empty()) return fallback;
  std::vector<int> out;
  for (const auto& v : vs) {
    size_t start = 0;
    while (start <= v.size()) {
      size_t end = v.find(',', start);
      if (end == std::string::npos) end = v.size();
      std::string part = v.substr(start, end - start);
      try {
        size_t pos = 0;
        int x = std::stoi(part, &pos);
        CS_CHECK_ARG(pos == part.size(), "option --", name, ": not an integer: ", part);
        out.push_back(x);
      } catch (const std::logic_error&) {
        CS_THROW(kInvalidArgument, "option --", name, ": not an integer: ", part);
      }
      start = end + 1;
    }
  }
  return out;
}

}  // namespace clipserve::cli
