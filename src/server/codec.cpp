// base64 and float-array JSON encoding for the HTTP server.
#include "server/codec.h"

#include <charconv>

#include "core/check.h"

namespace clipserve::server {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet
  if (c == '/' || c == '_') return 63;
  return -1;
}
}  // namespace

std::vector<uint8_t> base64_decode(std::string_view text, const std::string& what) {
  size_t start = 0;
  if (text.substr(0, 5) == "data:") {
    const size_t comma = text.find(',');
    CS_CHECK_ARG(comma != std::string_view::npos &&
                     text.substr(0, comma).find(";base64") != std::string_view::npos,
                 what, ": a data: URL must be base64 (data:<type>;base64,<data>)");
    start = comma + 1;
  }
  std::vector<uint8_t> out;
  out.reserve((text.size() - start) / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (size_t i = start; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    const int v = sextet(c);
    CS_CHECK_ARG(v >= 0 && pad == 0, what, ": invalid base64 character at offset ", i);
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xFF));
    }
  }
  CS_CHECK_ARG(bits < 6 && pad <= 2, what, ": truncated base64 data");
  return out;
}

std::string base64_encode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = bytes[i] << 16;
    if (i + 1 < bytes.size()) v |= bytes[i + 1] << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

void append_float_array(std::string& out, const float* v, size_t n) {
  out += '[';
  char buf[32];
  for (size_t i = 0; i < n; ++i) {
    if (i) out += ',';
    auto r = std::to_chars(buf, buf + sizeof(buf), v[i]);
    out.append(buf, r.ptr);
  }
  out += ']';
}

}  // namespace clipserve::server
