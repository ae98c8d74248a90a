// The epoll connection layer: accept, read with deadlines, frame, dispatch complete requests
// to worker pools, write each response in one send, keep-alive, lingering close, shutdown.
#include "server/connection.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/check.h"

namespace clipserve::server {

namespace {

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// How long a connection we answered with an error and half-closed is still read (and the
// bytes dropped), so that the client receives the answer instead of a reset.
constexpr double kLingerSeconds = 2.0;

std::string raw_response(int status, const std::string& body, bool close) {
  std::string r =
      "HTTP/1.1 " + std::to_string(status) + " " + status_reason(status) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nX-Content-Type-Options: nosniff\r\n";
  if (status == 503) r += "Retry-After: 1\r\n";
  r += close ? "Connection: close\r\n\r\n" : "\r\n";
  return r + body;
}

// Sends everything within the deadline; the socket is non-blocking.
bool send_all(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000))) < 0 &&
          errno != EINTR) {
        return false;
      }
      continue;
    }
    return false;
  }
  return true;
}

// Sends what the socket takes now. Returns false on a connection error.
bool send_some(int fd, const std::string& data, size_t& pos) {
  while (pos < data.size()) {
    const ssize_t n = ::send(fd, data.data() + pos, data.size() - pos, MSG_NOSIGNAL);
    if (n > 0) {
      pos += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }
  return true;
}

}  // namespace

std::string raw_error_response(int status, const std::string& body) {
  return raw_response(status, body, true);
}

ssize_t MemoryStream::read(char* ptr, size_t size) {
  const size_t n = std::min(size, in_.size() - pos_);
  std::memcpy(ptr, in_.data() + pos_, n);
  pos_ += n;
  return static_cast<ssize_t>(n);
}

struct ConnectionLayer::Conn {
  // kReading: the reader thread owns it; kQueued: queued or being served by a worker;
  // kWriting: the reader thread sends the rest of a response the socket could not take at
  // once (a client that does not read holds no worker); kLingering: answered, being drained.
  enum State { kReading, kQueued, kWriting, kLingering };
  Conn(int f, const FramingLimits& lim) : fd(f), framer(lim) {}
  int fd;
  std::string ip;
  int port = 0;
  std::string in;
  RequestFramer framer;
  State state = kReading;
  Clock::time_point request_start{};  // first byte of the request being read
  Clock::time_point idle_since = Clock::now();
  Clock::time_point linger_until{};
  int requests = 0;
  bool continue_sent = false;
  bool priority = false;
  std::string out;  // kWriting: the unsent rest of the response
  size_t out_pos = 0;
  Clock::time_point write_deadline{};
  bool close_after = false;
};

ConnectionLayer::ConnectionLayer(Router& router, ConnectionOptions opt)
    : router_(router), opt_(std::move(opt)) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) CS_THROW(kIo, "epoll/eventfd: ", std::strerror(errno));
}

ConnectionLayer::~ConnectionLayer() {
  stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers_exit_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  for (auto& [fd, c] : conns_) ::close(fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

int ConnectionLayer::bind() {
  // Each connection is a descriptor: let the process use all it may.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(opt_.port);
  const std::string where = opt_.host + ":" + port;
  if (const int rc = ::getaddrinfo(opt_.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    CS_THROW(kIo, "cannot listen on ", where, ": ", ::gai_strerror(rc));
  }
  int err = 0;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    const int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    // SO_REUSEADDR lets a restarted server bind while old connections sit in TIME_WAIT; on
    // Linux it never lets two listeners share the port (SO_REUSEPORT would: not set).
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, opt_.backlog) == 0) {
      listen_fd_ = fd;
      break;
    }
    err = errno;
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (listen_fd_ < 0) {
    if (err == EADDRINUSE) {
      CS_THROW(kIo, "cannot listen on ", where,
               ": the address is already in use (another server on this port?)");
    }
    CS_THROW(kIo, "cannot listen on ", where, ": ", std::strerror(err));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  opt_.port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return opt_.port;
}

void ConnectionLayer::stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
  }
}

bool ConnectionLayer::run() {
  CS_CHECK_ARG(listen_fd_ >= 0, "ConnectionLayer::run() before bind()");
  for (int fd : {listen_fd_, wake_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  for (int i = 0; i < std::max(1, opt_.workers); ++i) {
    workers_.emplace_back([this] { worker_loop(false); });
  }
  for (int i = 0; i < std::max(1, opt_.priority_workers); ++i) {
    workers_.emplace_back([this] { worker_loop(true); });
  }
  bool clean = true;
  bool closed_listener = false;
  Clock::time_point shutdown_deadline{};
  epoll_event events[256];
  while (true) {
    if (stopping_ && !closed_listener) {
      closed_listener = true;
      shutdown_deadline = Clock::now() + seconds(opt_.shutdown_timeout_s);
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
      ::close(listen_fd_);
      listen_fd_ = -1;
      std::vector<ConnPtr> idle;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto& [fd, c] : conns_) {
          if (c->state != Conn::kQueued) idle.push_back(c);
        }
        for (auto& c : idle) close_conn(c);
      }
    }
    if (closed_listener) {  // draining: only responses still being written are polled
      std::unique_lock<std::mutex> lock(mu_);
      if (in_flight_ == 0) break;
      if (Clock::now() >= shutdown_deadline) {
        clean = false;
        break;
      }
    }
    const int n = ::epoll_wait(epoll_fd_, events, 256, closed_listener ? 20 : 50);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listen_fd_) {
        accept_all();
        continue;
      }
      if (fd == wake_fd_) {
        uint64_t v;
        [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof(v));
        continue;
      }
      ConnPtr c;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = conns_.find(fd);
        if (it != conns_.end() && it->second->state != Conn::kQueued) c = it->second;
      }
      if (c && c->state == Conn::kWriting) {
        finish_write(c);
      } else if (c) {
        on_readable(c);
      }
    }
    std::vector<ConnPtr> recheck;
    {
      std::lock_guard<std::mutex> lock(mu_);
      recheck.swap(recheck_);
    }
    for (auto& c : recheck) advance(c);
    sweep();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (clean) {
    workers_exit_ = true;
    cv_.notify_all();
  }
  return clean;
}

void ConnectionLayer::accept_all() {
  while (true) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    const int fd =
        ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: the listener would stay readable and spin this loop; stop
        // watching it for a moment (sweep() resumes), pending clients wait in the backlog.
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
        accept_paused_until_ = Clock::now() + std::chrono::milliseconds(100);
      }
      return;
    }
    if (open_.load() >= static_cast<size_t>(std::max(1, opt_.max_connections))) {
      const std::string r = raw_response(
          503, opt_.error_body ? opt_.error_body(503, "too many open connections") : "", true);
      [[maybe_unused]] auto w = ::send(fd, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (opt_.on_error) opt_.on_error(503);
      ::close(fd);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_shared<Conn>(fd, opt_.limits);
    char ip[INET6_ADDRSTRLEN] = {0};
    if (ss.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
      c->port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
      c->port = ntohs(a->sin6_port);
    }
    c->ip = ip;
    {
      std::lock_guard<std::mutex> lock(mu_);
      conns_[fd] = c;
      ++open_;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
}

void ConnectionLayer::on_readable(const ConnPtr& c) {
  char buf[65536];
  while (true) {
    const ssize_t n = ::recv(c->fd, buf, sizeof(buf), 0);
    if (n > 0) {
      if (c->state == Conn::kLingering) continue;  // dropped: the answer is already sent
      // Clients that write headers and body separately without TCP_NODELAY (cpp-httplib,
      // many others) hold the body until the headers are acknowledged: acknowledge at once
      // instead of after the kernel's delayed-ACK timer (~40 ms per request). Quick-ack
      // mode is not sticky, so it is set again after every read.
      const int one = 1;
      ::setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
      c->in.append(buf, static_cast<size_t>(n));
      advance(c);
      std::lock_guard<std::mutex> lock(mu_);
      if (c->state == Conn::kQueued || !conns_.count(c->fd)) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    std::lock_guard<std::mutex> lock(mu_);  // EOF or error
    close_conn(c);
    return;
  }
}

void ConnectionLayer::advance(const ConnPtr& c) {
  if (c->state != Conn::kReading) return;
  if (c->request_start == Clock::time_point{}) {
    // Empty lines before a request are allowed (RFC 9112 2.2).
    size_t skip = 0;
    while (skip < c->in.size() && (c->in[skip] == '\r' || c->in[skip] == '\n')) ++skip;
    c->in.erase(0, skip);
    if (c->in.empty()) return;
    c->request_start = Clock::now();
  }
  const Frame& f = c->framer.feed(c->in);
  if (f.state == Frame::kError) {
    send_error_and_linger(c, f.status, f.message);
  } else if (f.state == Frame::kNeedMore) {
    if (f.headers_done && f.expect_continue && !c->continue_sent) {
      c->continue_sent = true;
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      // Tiny, into an empty send buffer; the reader thread never waits long for it.
      send_all(c->fd, kContinue, Clock::now() + std::chrono::milliseconds(100));
    }
  } else {
    for (size_t off : f.neutralize) c->in[off] = 'X';
    c->priority = f.priority;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
    std::lock_guard<std::mutex> lock(mu_);
    c->state = Conn::kQueued;
    enqueue(c);
  }
}

void ConnectionLayer::send_error_and_linger(const ConnPtr& c, int status,
                                            const std::string& message) {
  const std::string r =
      raw_response(status, opt_.error_body ? opt_.error_body(status, message) : "", true);
  if (opt_.on_error) opt_.on_error(status);
  send_all(c->fd, r, Clock::now() + std::chrono::milliseconds(100));  // small; never wait long
  ::shutdown(c->fd, SHUT_WR);
  c->in.clear();
  c->in.shrink_to_fit();
  std::lock_guard<std::mutex> lock(mu_);
  c->state = Conn::kLingering;
  c->linger_until = Clock::now() + seconds(kLingerSeconds);
}

void ConnectionLayer::close_conn(const ConnPtr& c) {
  auto it = conns_.find(c->fd);
  if (it == conns_.end() || it->second != c) return;
  conns_.erase(it);
  if (epoll_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
  ::close(c->fd);
  --open_;
}

void ConnectionLayer::sweep() {
  const auto now = Clock::now();
  if (accept_paused_until_ != Clock::time_point{} && now >= accept_paused_until_) {
    accept_paused_until_ = Clock::time_point{};
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  }
  std::vector<ConnPtr> slow, expired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [fd, c] : conns_) {
      if (c->state == Conn::kLingering) {
        if (now >= c->linger_until) expired.push_back(c);
      } else if (c->state == Conn::kWriting) {
        if (now >= c->write_deadline) {  // the client stopped reading its response
          expired.push_back(c);
          --in_flight_;
        }
      } else if (c->state == Conn::kReading) {
        if (c->request_start == Clock::time_point{}) {
          if (now - c->idle_since >= seconds(opt_.idle_timeout_s)) expired.push_back(c);
        } else if (now - c->request_start >= seconds(opt_.request_timeout_s)) {
          slow.push_back(c);
        }
      }
    }
    for (auto& c : expired) close_conn(c);
    if (!expired.empty()) idle_cv_.notify_all();
  }
  for (auto& c : slow) {
    char msg[96];
    std::snprintf(msg, sizeof(msg), "the request was not received within %g s",
                  opt_.request_timeout_s);
    send_error_and_linger(c, 408, msg);
  }
}

void ConnectionLayer::enqueue(const ConnPtr& c) {
  ++in_flight_;
  (c->priority ? priority_queue_ : queue_).push_back(c);
  cv_.notify_all();
}

void ConnectionLayer::worker_loop(bool priority) {
  auto& q = priority ? priority_queue_ : queue_;
  while (true) {
    ConnPtr c;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return workers_exit_ || !q.empty(); });
      if (q.empty()) return;
      c = std::move(q.front());
      q.pop_front();
    }
    serve_one(c);
  }
}

void ConnectionLayer::serve_one(const ConnPtr& c) {
  const size_t len = c->framer.frame().length;
  const bool last = stopping_ || ++c->requests >= std::max(1, opt_.keep_alive_max_requests);
  bool client_closes = false;
  bool ok = false;
  std::string out;
  {
    MemoryStream s(std::string_view(c->in).substr(0, len), c->ip, c->port, c->fd);
    ok = router_.process(s, last, client_closes);
    out = std::move(s.out());
  }
  size_t sent = 0;
  const bool alive = send_some(c->fd, out, sent);
  c->in.erase(0, len);
  if (c->in.capacity() > (1u << 20)) c->in.shrink_to_fit();  // a large body's buffer
  c->framer.reset();
  c->continue_sent = false;
  c->request_start = Clock::time_point{};
  c->idle_since = Clock::now();
  const bool close_after = !ok || last || client_closes || stopping_;
  std::lock_guard<std::mutex> lock(mu_);
  if (alive && sent < out.size()) {
    // The rest goes out from the reader thread as the client reads (still in flight).
    c->out = std::move(out);
    c->out_pos = sent;
    c->write_deadline = Clock::now() + seconds(opt_.write_timeout_s);
    c->close_after = close_after;
    c->state = Conn::kWriting;
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLRDHUP;
    ev.data.fd = c->fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c->fd, &ev);
    return;
  }
  --in_flight_;
  if (!alive || close_after) {
    close_conn(c);
  } else {
    resume_reading(c, EPOLL_CTL_ADD);
  }
  idle_cv_.notify_all();
}

void ConnectionLayer::resume_reading(const ConnPtr& c, int op) {
  c->state = Conn::kReading;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = c->fd;
  ::epoll_ctl(epoll_fd_, op, c->fd, &ev);
  if (!c->in.empty()) {  // pipelined bytes: the reader frames them
    recheck_.push_back(c);
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
  }
}

void ConnectionLayer::finish_write(const ConnPtr& c) {
  const bool alive = send_some(c->fd, c->out, c->out_pos);
  if (alive && c->out_pos < c->out.size()) return;  // more when the socket takes it
  std::lock_guard<std::mutex> lock(mu_);
  --in_flight_;
  c->out.clear();
  c->out.shrink_to_fit();
  if (!alive || c->close_after || stopping_) {
    close_conn(c);
  } else {
    resume_reading(c, EPOLL_CTL_MOD);
  }
  idle_cv_.notify_all();
}

}  // namespace clipserve::server
