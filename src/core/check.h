// Error helpers: CS_CHECK_ARG / CS_THROW for a caller's mistake (recoverable, typed
// clipserve::Error), CS_ASSERT for a broken invariant (a bug: abort with file:line).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "clipserve/error.h"

namespace clipserve::detail {

template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

[[noreturn]] inline void assert_fail(const char* expr, const char* file, int line,
                                     const std::string& msg) {
  std::fprintf(stderr, "clipserve: internal error: %s failed at %s:%d %s\n", expr, file, line,
               msg.c_str());
  std::abort();
}

}  // namespace clipserve::detail

/// Throws clipserve::Error(code, message built from the remaining arguments).
#define CS_THROW(code, ...) \
  throw ::clipserve::Error(::clipserve::ErrorCode::code, ::clipserve::detail::concat(__VA_ARGS__))

/// If `cond` is false, throws an kInvalidArgument error with the given message parts.
#define CS_CHECK_ARG(cond, ...)                \
  do {                                         \
    if (!(cond)) {                             \
      CS_THROW(kInvalidArgument, __VA_ARGS__); \
    }                                          \
  } while (0)

/// Aborts when an internal invariant does not hold (never for bad input).
#define CS_ASSERT(cond, ...)                                                                      \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      ::clipserve::detail::assert_fail(                                                           \
          #cond, __FILE__, __LINE__, ::clipserve::detail::concat("" __VA_OPT__(, ) __VA_ARGS__)); \
    }                                                                                             \
  } while (0)
