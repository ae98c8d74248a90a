// URL fetching with an allow-list and SSRF guards (see url_fetch.h): every hop is parsed,
// matched, resolved once and pinned (CURLOPT_RESOLVE), so DNS cannot swap the address after
// the check; redirects are followed by hand so each target is checked too.
#include "server/url_fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>

#include "core/check.h"

namespace clipserve::server {

namespace {

struct Addr {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> b{};
};

bool parse_addr(const std::string& s, Addr* a) {
  if (inet_pton(AF_INET, s.c_str(), a->b.data()) == 1) {
    a->family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), a->b.data()) == 1) {
    a->family = AF_INET6;
    return true;
  }
  return false;
}

std::string addr_str(const Addr& a) {
  char buf[INET6_ADDRSTRLEN] = "";
  inet_ntop(a.family, a.b.data(), buf, sizeof buf);
  return buf;
}

bool in_prefix(const Addr& a, const Addr& net, int bits) {
  if (a.family != net.family) return false;
  for (int i = 0; i < bits / 8; ++i) {
    if (a.b[i] != net.b[i]) return false;
  }
  if (bits % 8) {
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits % 8));
    if ((a.b[bits / 8] & mask) != (net.b[bits / 8] & mask)) return false;
  }
  return true;
}

struct Cidr {
  Addr net;
  int bits = 0;
};

bool parse_cidr(const std::string& s, Cidr* c) {
  const auto slash = s.find('/');
  if (!parse_addr(s.substr(0, slash), &c->net)) return false;
  const int max = c->net.family == AF_INET ? 32 : 128;
  c->bits = max;
  if (slash != std::string::npos) {
    const std::string n = s.substr(slash + 1);
    if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    c->bits = std::stoi(n);
    if (c->bits > max) return false;
  }
  return true;
}

// Addresses that are not the public internet.
bool is_special(const Addr& a0) {
  Addr a = a0;
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (a.family == AF_INET6 && std::memcmp(a.b.data(), mapped, 12) == 0) {  // ::ffff:a.b.c.d
    a.family = AF_INET;
    std::memmove(a.b.data(), a.b.data() + 12, 4);
  }
  static const char* kRanges[] = {
      "0.0.0.0/8",     "10.0.0.0/8",   "100.64.0.0/10",  "127.0.0.0/8",   "169.254.0.0/16",
      "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3",
      "::/128",        "::1/128",      "fc00::/7",       "fe80::/10",     "ff00::/8",
      "64:ff9b::/96",  "2001:db8::/32"};
  for (const char* r : kRanges) {
    Cidr c;
    parse_cidr(r, &c);
    if (in_prefix(a, c.net, c.bits)) return true;
  }
  return false;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

struct CurlUrl {
  CURLU* h = curl_url();
  ~CurlUrl() { curl_url_cleanup(h); }
  std::string get(CURLUPart part, unsigned flags = 0) const {
    char* v = nullptr;
    if (curl_url_get(h, part, &v, flags) != CURLUE_OK || v == nullptr) return {};
    std::string s = v;
    curl_free(v);
    return s;
  }
};

struct Target {
  std::string url, host;  // host without IPv6 brackets
  long port = 0;
};

Target parse_target(const std::string& url) {
  CurlUrl u;
  CS_CHECK_ARG(curl_url_set(u.h, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK, "URL '", url,
               "' is malformed");
  const std::string scheme = lower(u.get(CURLUPART_SCHEME));
  CS_CHECK_ARG(scheme == "http" || scheme == "https", "URL '", url,
               "': only http and https are fetched");
  Target t;
  t.url = url;
  t.host = lower(u.get(CURLUPART_HOST));
  if (t.host.size() > 2 && t.host.front() == '[') t.host = t.host.substr(1, t.host.size() - 2);
  CS_CHECK_ARG(!t.host.empty(), "URL '", url, "' has no host");
  t.port = std::stol(u.get(CURLUPART_PORT, CURLU_DEFAULT_PORT));
  return t;
}

struct Body {
  std::vector<uint8_t> data;
  size_t max = 0;
  bool too_large = false;
};

size_t write_cb(char* p, size_t size, size_t n, void* ud) {
  auto* b = static_cast<Body*>(ud);
  const size_t len = size * n;
  if (b->data.size() + len > b->max) {
    b->too_large = true;
    return 0;  // aborts the transfer
  }
  b->data.insert(b->data.end(), p, p + len);
  return len;
}

struct CurlGlobalInit {
  CurlGlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

}  // namespace

UrlFetcher::UrlFetcher(UrlFetchOptions opt) : opt_(std::move(opt)) {
  for (auto& e : opt_.allow) {
    check_allow_entry(e);
    e = lower(e);
  }
  static CurlGlobalInit init;
}

void UrlFetcher::check_allow_entry(const std::string& e) {
  Cidr c;
  if (parse_cidr(e, &c)) return;
  std::string name = e.rfind("*.", 0) == 0 ? e.substr(2) : e;
  CS_CHECK_ARG(!name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") ==
                                    std::string::npos,
               "--allow-url-host '", e,
               "': expected a host name, *.suffix, an IP address or a CIDR range");
}

bool UrlFetcher::is_url(const std::string& s) {
  const std::string p = lower(s.substr(0, 8));
  return p.rfind("http://", 0) == 0 || p.rfind("https://", 0) == 0;
}

std::vector<uint8_t> UrlFetcher::fetch(const std::string& url0) const {
  CS_CHECK_ARG(enabled(), "URL '", url0,
               "': this server fetches no URLs (start it with --allow-url-host HOST)");
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(opt_.timeout_ms);
  std::string url = url0;
  for (int hop = 0;; ++hop) {
    const Target t = parse_target(url);
    const std::string what =
        hop ? "redirect to '" + url + "' (from '" + url0 + "')" : "URL '" + url + "'";
    // 1. The host must be listed, by name or as an address.
    Addr literal;
    const bool is_literal = parse_addr(t.host, &literal);
    bool name_ok = false;
    std::vector<Cidr> nets;
    for (const auto& e : opt_.allow) {
      Cidr c;
      if (parse_cidr(e, &c)) {
        nets.push_back(c);
      } else if (!is_literal && e.rfind("*.", 0) == 0) {
        const std::string suf = e.substr(1);  // ".example.com"
        name_ok |= t.host.size() > suf.size() &&
                   t.host.compare(t.host.size() - suf.size(), suf.size(), suf) == 0;
      } else if (!is_literal) {
        name_ok |= t.host == e;
      }
    }
    auto covered = [&](const Addr& a) {
      return std::any_of(nets.begin(), nets.end(),
                         [&](const Cidr& c) { return in_prefix(a, c.net, c.bits); });
    };
    CS_CHECK_ARG(name_ok || (is_literal && covered(literal)), what, " refused: host ", t.host,
                 " is not in the server's --allow-url-host list");
    // 2. Resolve once; use an address that is public or explicitly listed; pin it.
    std::vector<Addr> addrs;
    if (is_literal) {
      addrs.push_back(literal);
    } else {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      const int rc = getaddrinfo(t.host.c_str(), nullptr, &hints, &res);
      CS_CHECK_ARG(rc == 0, what, ": cannot resolve ", t.host, ": ", gai_strerror(rc));
      for (addrinfo* p = res; p; p = p->ai_next) {
        Addr a;
        a.family = p->ai_family;
        if (p->ai_family == AF_INET) {
          std::memcpy(a.b.data(), &reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr, 4);
        } else if (p->ai_family == AF_INET6) {
          std::memcpy(a.b.data(), &reinterpret_cast<sockaddr_in6*>(p->ai_addr)->sin6_addr, 16);
        } else {
          continue;
        }
        addrs.push_back(a);
      }
      freeaddrinfo(res);
    }
    std::string pinned;  // every usable address: curl tries them in order
    for (const Addr& a : addrs) {
      if (is_special(a) && !covered(a)) continue;
      const std::string s = addr_str(a);
      pinned += (pinned.empty() ? "" : ",") + (a.family == AF_INET6 ? "[" + s + "]" : s);
    }
    CS_CHECK_ARG(!pinned.empty(), what, " refused: ", t.host, " resolves to ",
                 addrs.empty() ? std::string("nothing") : addr_str(addrs[0]),
                 ", a loopback/private/special address; list it (or its range) in "
                 "--allow-url-host to allow it");
    const std::string pin = (t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host) +
                            ":" + std::to_string(t.port) + ":" + pinned;
    // 3. One request, no automatic redirects, limits on size and time.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    CS_CHECK_ARG(left > 0, "URL '", url0, "' timed out after ", opt_.timeout_ms, " ms");
    std::unique_ptr<CURL, void (*)(CURL*)> c(curl_easy_init(), curl_easy_cleanup);
    if (!c) CS_THROW(kInternal, "curl_easy_init failed");
    curl_slist* resolve = curl_slist_append(nullptr, pin.c_str());
    std::unique_ptr<curl_slist, void (*)(curl_slist*)> resolve_guard(resolve, curl_slist_free_all);
    Body body;
    body.max = opt_.max_bytes;
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.get(), CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c.get(), CURLOPT_PROXY, "");  // never through an environment proxy
    curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(left));
    curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<long long>(left, opt_.connect_timeout_ms)));
    curl_easy_setopt(c.get(), CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(opt_.max_bytes));
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "clipserve/" CLIPSERVE_VERSION);
    const CURLcode rc = curl_easy_perform(c.get());
    if (body.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
      CS_THROW(kTooLarge, what, ": the image is larger than the server's limit of ", opt_.max_bytes,
               " bytes");
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      CS_THROW(kInvalidArgument, "URL '", url0, "' timed out after ", opt_.timeout_ms, " ms");
    }
    CS_CHECK_ARG(rc == CURLE_OK, what, ": ", err[0] ? err : curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300 && status < 400) {
      char* loc = nullptr;
      curl_easy_getinfo(c.get(), CURLINFO_REDIRECT_URL, &loc);
      CS_CHECK_ARG(loc != nullptr, what, ": HTTP ", status, " without a Location");
      CS_CHECK_ARG(hop < opt_.max_redirects, "URL '", url0, "': more than ", opt_.max_redirects,
                   " redirects");
      url = loc;
      continue;
    }
    CS_CHECK_ARG(status >= 200 && status < 300, what, " answered HTTP ", status);
    return std::move(body.data);
  }
}

}  // namespace clipserve::server
