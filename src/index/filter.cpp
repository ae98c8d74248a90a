// Marqo filter-string parser (recursive descent) emitting parameterized SQL (see filter.h).
#include "index/filter.h"

#include <cctype>
#include <charconv>
#include <cmath>

#include "core/check.h"

// GCC 12 reports a false -Wrestrict in inlined std::string concatenation (GCC bug 105329).
#pragma GCC diagnostic ignored "-Wrestrict"
// ... and a false -Wmaybe-uninitialized on std::variant<..., std::string> moves at -O2 -g.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace clipserve::index {

namespace {

bool field_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

struct Value {
  std::string text;
  bool quoted = false;
};

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  SqlFilter run() {
    SqlFilter f;
    skip_ws();
    if (pos_ == s_.size()) {
      f.sql = "1";
      return f;
    }
    f.sql = parse_or();
    skip_ws();
    if (pos_ != s_.size()) fail("expected AND, OR or the end");
    f.params = std::move(params_);
    return f;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    CS_THROW(kInvalidArgument, "filter: ", what, " at offset ", pos_, " in '", s_, "'");
  }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  // The keyword at pos_ followed by a space, '(' or the end.
  bool keyword(const char* kw) {
    skip_ws();
    const size_t n = std::char_traits<char>::length(kw);
    if (s_.compare(pos_, n, kw) != 0) return false;
    const size_t e = pos_ + n;
    if (e < s_.size() && !std::isspace(static_cast<unsigned char>(s_[e])) && s_[e] != '(') {
      return false;
    }
    pos_ = e;
    return true;
  }
  bool peek(char c) {
    skip_ws();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  void expect(char c, const char* what) {
    if (!peek(c)) fail(std::string("expected ") + what);
    ++pos_;
  }

  std::string parse_or() {
    std::string out = parse_and();
    while (keyword("OR")) out = "(" + out + " OR " + parse_and() + ")";
    return out;
  }
  std::string parse_and() {
    std::string out = parse_unary();
    while (keyword("AND")) out = "(" + out + " AND " + parse_unary() + ")";
    return out;
  }
  std::string parse_unary() {
    if (++depth_ > 64) fail("nesting deeper than 64");
    std::string out;
    if (keyword("NOT")) {
      out = "(NOT " + parse_unary() + ")";
    } else if (peek('(')) {
      ++pos_;
      out = parse_or();
      expect(')', "')'");
    } else {
      out = parse_term();
    }
    --depth_;
    return out;
  }

  std::string parse_field() {
    skip_ws();
    const size_t b = pos_;
    while (pos_ < s_.size() && field_char(s_[pos_])) ++pos_;
    if (pos_ == b) fail("expected a field name");
    if (pos_ - b > 128) fail("field name longer than 128 characters");
    return s_.substr(b, pos_ - b);
  }

  // A value: "quoted", (words), or a bare word ending at space, ')' or ','.
  Value parse_value(bool in_list) {
    skip_ws();
    Value v;
    if (pos_ == s_.size()) fail("expected a value");
    const char c = s_[pos_];
    if (c == '"') {
      v.quoted = true;
      ++pos_;
      while (true) {
        if (pos_ == s_.size()) fail("unterminated quoted value");
        char ch = s_[pos_++];
        if (ch == '"') break;
        if (ch == '\\') {
          if (pos_ == s_.size()) fail("dangling backslash");
          ch = s_[pos_++];
        }
        v.text += ch;
      }
      return v;
    }
    if (c == '(' && !in_list) {
      // Marqo's grouping of a multi-word value: field:(hello world).
      v.quoted = true;
      ++pos_;
      const size_t b = pos_;
      while (pos_ < s_.size() && s_[pos_] != ')') ++pos_;
      if (pos_ == s_.size()) fail("unterminated '(' value");
      v.text = s_.substr(b, pos_ - b);
      ++pos_;
      const auto f = v.text.find_first_not_of(" \t"), l = v.text.find_last_not_of(" \t");
      v.text = f == std::string::npos ? "" : v.text.substr(f, l - f + 1);
      return v;
    }
    if (c == '[' || c == ']' || c == ')' || c == ',' || c == ':') fail("expected a value");
    while (pos_ < s_.size()) {
      char ch = s_[pos_];
      if (std::isspace(static_cast<unsigned char>(ch)) || ch == ')' || ch == ']' ||
          (in_list && ch == ',')) {
        break;
      }
      if (ch == '\\' && pos_ + 1 < s_.size()) ch = s_[++pos_];
      v.text += ch;
      ++pos_;
    }
    return v;
  }

  static bool as_number(const Value& v, double* out) {
    if (v.quoted || v.text.empty()) return false;
    const char* b = v.text.data();
    const char* e = b + v.text.size();
    auto r = std::from_chars(b, e, *out);
    return r.ec == std::errc() && r.ptr == e && std::isfinite(*out);
  }

  std::string path_param(const std::string& field) {
    params_.push_back("$.\"" + field + "\"");
    return "?";
  }

  // The value matches the field (an element of it, when it is an array).
  std::string equals(const std::string& field, const Value& v) {
    if (field == "_id") {
      params_.push_back(v.text);
      return "(d.id = ?)";
    }
    std::string sql =
        "EXISTS (SELECT 1 FROM json_each(d.metadata, " + path_param(field) + ") WHERE ";
    if (!v.quoted && (v.text == "true" || v.text == "false")) {
      params_.push_back(v.text);
      return sql + "type = ?)";
    }
    double num = 0;
    params_.push_back(v.text);
    if (as_number(v, &num)) {
      params_.push_back(num);
      return sql + "(type = 'text' AND value = ?) OR (type IN ('integer', 'real') AND value = ?))";
    }
    return sql + "type = 'text' AND value = ?)";
  }

  std::string parse_term() {
    const std::string field = parse_field();
    if (keyword("IN")) {
      expect('(', "'(' after IN");
      std::string out = "(";
      for (int n = 0;; ++n) {
        if (n) out += " OR ";
        out += equals(field, parse_value(true));
        if (peek(',')) {
          ++pos_;
          continue;
        }
        expect(')', "',' or ')' in the IN list");
        break;
      }
      return out + ")";
    }
    skip_ws();
    if (pos_ >= s_.size() || s_[pos_] != ':')
      fail("expected ':' or IN after field '" + field + "'");
    ++pos_;
    if (peek('[')) {
      ++pos_;
      if (field == "_id") fail("_id takes no range");
      const Value lo = parse_value(false);
      if (!keyword("TO")) fail("expected TO in the range");
      const Value hi = parse_value(false);
      expect(']', "']' closing the range");
      double l = 0, h = 0;
      const bool open_lo = !lo.quoted && lo.text == "*", open_hi = !hi.quoted && hi.text == "*";
      if (!open_lo && !as_number(lo, &l)) fail("range bound '" + lo.text + "' is not a number");
      if (!open_hi && !as_number(hi, &h)) fail("range bound '" + hi.text + "' is not a number");
      std::string sql = "EXISTS (SELECT 1 FROM json_each(d.metadata, " + path_param(field) +
                        ") WHERE type IN ('integer', 'real')";
      if (!open_lo) {
        params_.push_back(l);
        sql += " AND value >= ?";
      }
      if (!open_hi) {
        params_.push_back(h);
        sql += " AND value <= ?";
      }
      return sql + ")";
    }
    return equals(field, parse_value(false));
  }

  const std::string& s_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::vector<SqlValue> params_;
};

}  // namespace

SqlFilter parse_filter(const std::string& filter) {
  CS_CHECK_ARG(filter.size() <= 65536, "filter: longer than 65536 characters");
  return Parser(filter).run();
}

}  // namespace clipserve::index
