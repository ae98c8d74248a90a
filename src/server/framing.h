// HTTP/1.1 request framing before any handler runs: where a request ends (Content-Length or
// chunked), and the limits a client cannot bypass (header bytes and count, target length,
// body size, chunked size, no request compression, POST without a length).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace clipserve::server {

struct FramingLimits {
  size_t max_header_bytes = 64u << 10;  ///< request line + headers (-> 431)
  size_t max_headers = 100;             ///< header lines (-> 431)
  size_t max_target_bytes = 8192;       ///< request target (-> 414)
  size_t max_body_bytes = 32u << 20;    ///< decoded body, Content-Length or chunked (-> 413)
};

/// What is known about the request at the start of a connection's buffer.
struct Frame {
  enum State { kNeedMore, kComplete, kError };
  State state = kNeedMore;
  bool headers_done = false;
  bool expect_continue = false;  ///< "Expect: 100-continue" and the body has not come yet
  bool priority = false;  ///< GET /health/*, /metrics, /ping, /v2/health/*: the priority pool
  size_t length = 0;      ///< kComplete: bytes of the whole request
  int status = 0;         ///< kError: the HTTP status to answer
  std::string message;    ///< kError: why
  /// Offsets of header names the caller must neutralize before handing the bytes on
  /// (Expect: answered here; Range: never honoured), by overwriting their first byte.
  std::vector<size_t> neutralize;
};

/// Incremental framer for one request at a time. feed() takes the connection's whole buffer
/// (the request starts at offset 0; bytes are only ever appended) and resumes where it
/// stopped, so a body that arrives in many reads costs linear time.
class RequestFramer {
 public:
  explicit RequestFramer(const FramingLimits& limits) : lim_(limits) {}
  const Frame& feed(std::string_view buf);
  /// Forget the current request (the next one starts at offset 0 of the caller's buffer).
  void reset();
  const Frame& frame() const { return f_; }

 private:
  void error(int status, std::string message);
  void parse_headers(std::string_view head);
  void feed_chunked(std::string_view buf);

  FramingLimits lim_;
  Frame f_;
  size_t scan_ = 0;        // header end search resumes here
  size_t body_start_ = 0;  // after the blank line
  bool chunked_ = false;
  size_t content_length_ = 0;
  size_t chunk_pos_ = 0;   // next chunk-size line
  size_t body_bytes_ = 0;  // decoded chunked bytes so far
  bool in_trailer_ = false;
};

/// The reason phrase of a status ("Payload Too Large").
const char* status_reason(int status);

}  // namespace clipserve::server
