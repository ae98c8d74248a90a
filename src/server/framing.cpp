// Request framing and framing limits (see framing.h).
#include "server/framing.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace clipserve::server {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

constexpr size_t kMaxChunkLine = 1024;

}  // namespace

const char* status_reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

void RequestFramer::reset() { *this = RequestFramer(lim_); }

void RequestFramer::error(int status, std::string message) {
  f_.state = Frame::kError;
  f_.status = status;
  f_.message = std::move(message);
}

const Frame& RequestFramer::feed(std::string_view buf) {
  if (f_.state != Frame::kNeedMore) return f_;
  if (!f_.headers_done) {
    const size_t from = scan_ >= 3 ? scan_ - 3 : 0;
    const size_t end = buf.find("\r\n\r\n", from);
    const size_t head_len = end == std::string_view::npos ? buf.size() : end + 4;
    // Lines so far (the request line included) bound the header count before the end is seen.
    const size_t lines = static_cast<size_t>(std::count(buf.begin(), buf.begin() + head_len, '\n'));
    const size_t eol = buf.find("\r\n");
    const size_t line = eol == std::string_view::npos ? buf.size() : eol;
    if (line > lim_.max_target_bytes + 32) {
      error(414, "request target longer than " + std::to_string(lim_.max_target_bytes) + " bytes");
      return f_;
    }
    if (head_len > lim_.max_header_bytes) {
      error(431, "request headers larger than " + std::to_string(lim_.max_header_bytes) + " bytes");
      return f_;
    }
    if (lines > lim_.max_headers + 2) {
      error(431, "more than " + std::to_string(lim_.max_headers) + " header lines");
      return f_;
    }
    if (end == std::string_view::npos) {
      scan_ = buf.size();
      return f_;
    }
    f_.headers_done = true;
    body_start_ = end + 4;
    parse_headers(buf.substr(0, end + 2));
    if (f_.state == Frame::kError) return f_;
    chunk_pos_ = body_start_;
  }
  if (chunked_) {
    feed_chunked(buf);
  } else if (buf.size() >= body_start_ + content_length_) {
    f_.state = Frame::kComplete;
    f_.length = body_start_ + content_length_;
  }
  if (f_.state == Frame::kComplete) f_.expect_continue = false;
  return f_;
}

void RequestFramer::parse_headers(std::string_view head) {
  size_t eol = head.find("\r\n");
  const std::string_view request_line = head.substr(0, eol);
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || request_line.find(' ', sp2 + 1) != std::string_view::npos) {
    return error(400, "malformed request line");
  }
  const std::string_view method = request_line.substr(0, sp1);
  const std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = request_line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_token_char) ||
      target.empty()) {
    return error(400, "malformed request line");
  }
  if (target.size() > lim_.max_target_bytes) {
    return error(414,
                 "request target longer than " + std::to_string(lim_.max_target_bytes) + " bytes");
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return error(505, "only HTTP/1.0 and HTTP/1.1 are served");
  }
  const std::string_view path = target.substr(0, target.find('?'));
  f_.priority = method == "GET" && (path.rfind("/health/", 0) == 0 || path == "/metrics" ||
                                    path == "/ping" || path.rfind("/v2/health/", 0) == 0);

  bool have_length = false, have_te = false;
  size_t pos = eol + 2;
  while (pos < head.size()) {
    eol = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, eol - pos);
    const size_t line_start = pos;
    pos = eol + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 ||
        !std::all_of(line.begin(), line.begin() + colon, is_token_char)) {
      return error(400, "malformed header line");
    }
    const std::string name = lower(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-length") {
      if (value.empty() || value.size() > 15 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return error(400, "invalid Content-Length");
      }
      const size_t n = std::stoull(std::string(value));
      if (have_length && n != content_length_) return error(400, "conflicting Content-Length");
      have_length = true;
      content_length_ = n;
    } else if (name == "transfer-encoding") {
      if (lower(value) != "chunked") {
        return error(501, "Transfer-Encoding '" + std::string(value) + "' is not supported");
      }
      have_te = true;
    } else if (name == "content-encoding") {
      const std::string v = lower(value);
      if (!v.empty() && v != "identity") {
        return error(415, "compressed request bodies (Content-Encoding: " + std::string(value) +
                              ") are not accepted; send the body uncompressed");
      }
    } else if (name == "expect") {
      if (lower(value) != "100-continue") return error(417, "unsupported Expect");
      f_.expect_continue = true;
      f_.neutralize.push_back(line_start);
    } else if (name == "range") {
      f_.neutralize.push_back(line_start);
    }
  }
  if (have_te && have_length) {
    return error(400, "both Content-Length and Transfer-Encoding given");
  }
  chunked_ = have_te;
  if (have_length && content_length_ > lim_.max_body_bytes) {
    return error(413, "request body of " + std::to_string(content_length_) +
                          " bytes is larger than the limit of " +
                          std::to_string(lim_.max_body_bytes) + " bytes");
  }
  const bool needs_body = method == "POST" || method == "PUT" || method == "PATCH";
  if (needs_body && !have_length && !have_te) {
    return error(411, std::string(method) + " needs a Content-Length (or a chunked body)");
  }
}

void RequestFramer::feed_chunked(std::string_view buf) {
  while (true) {
    const size_t eol = buf.find("\r\n", chunk_pos_);
    if (eol == std::string_view::npos) {
      if (buf.size() - chunk_pos_ > (in_trailer_ ? lim_.max_header_bytes : kMaxChunkLine)) {
        return error(in_trailer_ ? 431 : 400,
                     in_trailer_ ? "chunked trailer too large" : "chunk size line too long");
      }
      return;
    }
    if (in_trailer_) {
      if (eol == chunk_pos_) {  // the blank line ends the request
        f_.state = Frame::kComplete;
        f_.length = eol + 2;
        return;
      }
      if (eol + 2 - body_start_ > lim_.max_body_bytes + lim_.max_header_bytes) {
        return error(431, "chunked trailer too large");
      }
      chunk_pos_ = eol + 2;
      continue;
    }
    std::string_view line = buf.substr(chunk_pos_, eol - chunk_pos_);
    line = trim(line.substr(0, line.find(';')));
    if (line.empty() || line.size() > 15 || !std::all_of(line.begin(), line.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c));
        })) {
      return error(400, "invalid chunk size");
    }
    const size_t size = std::stoull(std::string(line), nullptr, 16);
    if (size > lim_.max_body_bytes - body_bytes_) {
      return error(413, "chunked request body larger than the limit of " +
                            std::to_string(lim_.max_body_bytes) + " bytes");
    }
    if (size == 0) {
      in_trailer_ = true;
      chunk_pos_ = eol + 2;
      continue;
    }
    const size_t data = eol + 2;
    if (buf.size() < data + size + 2) return;
    if (buf.substr(data + size, 2) != "\r\n") return error(400, "chunk data not followed by CRLF");
    body_bytes_ += size;
    chunk_pos_ = data + size + 2;
  }
}

}  // namespace clipserve::server
