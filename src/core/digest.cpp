// to_hex and sha256_hex (see digest.h), the digest on OpenSSL's EVP interface.
#include "core/digest.h"

#include <openssl/evp.h>

#include "core/check.h"

namespace clipserve {

std::string to_hex(std::span<const uint8_t> bytes) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s += hex[b >> 4];
    s += hex[b & 15];
  }
  return s;
}

std::string sha256_hex(std::span<const uint8_t> data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CS_ASSERT(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  return to_hex({md, len});
}

}  // namespace clipserve
