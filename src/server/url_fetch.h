// Fetching images by URL for the endpoints that take them, only from hosts the operator listed
// (--allow-url-host), with size, time and redirect limits, and no server-side request forgery:
// loopback, private, link-local and other special addresses are refused unless listed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace clipserve::server {

struct UrlFetchOptions {
  /// Who may be fetched from. Each entry is a host name ("images.example.com"), a name suffix
  /// ("*.example.com": its subdomains), an IP address ("10.1.2.3", "::1") or a CIDR range
  /// ("10.0.0.0/8"). Empty: fetching is off. A host name matches by name, but an address it
  /// resolves to that is not public (loopback, private, link-local, CGNAT, multicast,
  /// unspecified, IPv4-mapped forms of those) is used only when an IP/CIDR entry covers it.
  std::vector<std::string> allow;
  size_t max_bytes = 32u << 20;  ///< larger responses fail with Error(kTooLarge)
  int timeout_ms = 10000;        ///< whole fetch, redirects included
  int connect_timeout_ms = 3000;
  int max_redirects = 3;  ///< each hop is checked against `allow` like the first URL
};

/// Thread-safety: fetch() may be called from any number of threads at once.
class UrlFetcher {
 public:
  explicit UrlFetcher(UrlFetchOptions opt);
  /// Validates the allow-list entries; throws Error(kInvalidArgument) naming a bad one.
  static void check_allow_entry(const std::string& entry);

  bool enabled() const { return !opt_.allow.empty(); }
  /// The body of a 2xx answer to GET `url`. Throws Error(kInvalidArgument) for a refused or
  /// malformed URL, a refused redirect, a non-2xx status or a network failure/time-out (the
  /// message names the URL and why), Error(kTooLarge) past max_bytes.
  std::vector<uint8_t> fetch(const std::string& url) const;

  /// True if `url` looks like one this fetcher handles (http:// or https://).
  static bool is_url(const std::string& s);

 private:
  UrlFetchOptions opt_;
};

}  // namespace clipserve::server
