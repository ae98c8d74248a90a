// clipserve's error type: every failure a caller can recover from is a clipserve::Error.
#pragma once

#include <stdexcept>
#include <string>

namespace clipserve {

/// What kind of failure happened; the HTTP server maps these to status codes.
enum class ErrorCode {
  kInvalidArgument,  ///< bad input: corrupt image, invalid UTF-8, bad tensor file (-> 400)
  kNotFound,         ///< a file, model or label set that does not exist (-> 404)
  kIo,               ///< the OS or network failed (read error, disk full)
  kUnsupported,      ///< valid input that clipserve does not handle
  kTooLarge,         ///< input over a configured limit (decompression bomb, body size) (-> 413)
  kOverloaded,       ///< queue full (-> 429/503)
  kUnavailable,      ///< not ready yet, shutting down, offline (-> 503)
  kInternal,         ///< anything else
};

/// Thrown by every clipserve API on a recoverable failure. The message names the input
/// (file, tensor, request index) that caused it. Broken invariants abort instead (CS_ASSERT).
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

/// Short lowercase name of a code ("invalid_argument", ...), used in JSON error bodies.
const char* error_code_name(ErrorCode code) noexcept;

}  // namespace clipserve
