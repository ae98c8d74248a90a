// Encodings the HTTP API needs: base64 (standard alphabet, data: URLs), and JSON arrays of
// floats written with the shortest text that reads back to the same float32.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace clipserve::server {

/// Decodes standard base64 (padding optional, whitespace ignored). A `data:...;base64,`
/// prefix is skipped. Throws Error(kInvalidArgument) naming `what` and the bad offset.
std::vector<uint8_t> base64_decode(std::string_view text, const std::string& what);
std::string base64_encode(std::span<const uint8_t> bytes);

/// Appends `[v0,v1,...]` to `out` (std::to_chars shortest round-trip form).
void append_float_array(std::string& out, const float* v, size_t n);

}  // namespace clipserve::server
