// sha256_hex (see digest.h) on OpenSSL's EVP interface.
#include "core/digest.h"

#include <openssl/evp.h>

#include "core/check.h"

namespace clipserve {

std::string sha256_hex(std::span<const uint8_t> data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CS_ASSERT(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s += hex[md[i] >> 4];
    s += hex[md[i] & 15];
  }
  return s;
}

}  // namespace clipserve
