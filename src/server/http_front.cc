// server: the epoll front that buffers whole requests before httplib's handlers run.
#include "server/http_front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "server/http_framing.h"

namespace rme {
namespace {

thread_local int tls_client_fd = -1;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void set_blocking(int fd, bool blocking) {
  const int flags = fcntl(fd, F_GETFL, 0);
  if (flags >= 0) fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

// Runs httplib's per-connection task at once on the listener thread: it only hands the socket
// to the front.
class InlineQueue : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

// A socket stream that first serves the bytes the front already read.
class BufferedSocketStream : public httplib::Stream {
 public:
  BufferedSocketStream(int fd, std::string buffered, time_t read_s, time_t write_s)
      : fd_(fd),
        buf_(std::move(buffered)),
        read_ms_(static_cast<int>(read_s * 1000)),
        write_ms_(static_cast<int>(write_s * 1000)) {}

  bool is_readable() const override { return at_ < buf_.size() || wait(POLLIN, read_ms_); }
  bool is_writable() const override {
    pollfd p{fd_, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
      return false;  // the client is gone
    return wait(POLLOUT, write_ms_);
  }
  ssize_t read(char* ptr, size_t size) override {
    if (at_ < buf_.size()) {
      const size_t n = std::min(size, buf_.size() - at_);
      std::memcpy(ptr, buf_.data() + at_, n);
      at_ += n;
      if (at_ == buf_.size()) {  // all handed over: free it before the handler runs
        std::string().swap(buf_);
        at_ = 0;
      }
      return static_cast<ssize_t>(n);
    }
    if (!wait(POLLIN, read_ms_)) return -1;
    for (;;) {
      const ssize_t n = ::recv(fd_, ptr, size, 0);
      if (n < 0 && errno == EINTR) continue;
      return n;
    }
  }
  ssize_t write(const char* ptr, size_t size) override {
    size_t done = 0;
    while (done < size) {
      if (!wait(POLLOUT, write_ms_)) return -1;
      const ssize_t n = ::send(fd_, ptr + done, size - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return -1;
      done += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address(true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address(false, ip, port);
  }
  socket_t socket() const override { return fd_; }
  std::string unread() const { return buf_.substr(at_); }  // a pipelined next request

 private:
  bool wait(short events, int ms) const {
    pollfd p{fd_, events, 0};
    for (;;) {
      const int r = ::poll(&p, 1, ms);
      if (r < 0 && errno == EINTR) continue;
      return r > 0 && (p.revents & events);
    }
  }
  void address(bool remote, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    auto* sa = reinterpret_cast<sockaddr*>(&a);
    if ((remote ? getpeername(fd_, sa, &len) : getsockname(fd_, sa, &len)) != 0) return;
    char host[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&a);
      inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      port = ntohs(in->sin_port);
    } else if (a.ss_family == AF_INET6) {
      auto* in = reinterpret_cast<sockaddr_in6*>(&a);
      inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
      port = ntohs(in->sin6_port);
    }
    ip = host;
  }

  int fd_;
  std::string buf_;
  size_t at_ = 0;
  int read_ms_, write_ms_;
};

constexpr size_t kProbation = 64;        // connections over a limit, held at most
constexpr double kProbationSeconds = 2;  // to send a whole /health or /metrics request
constexpr double kLingerSeconds = 2;     // draining a rejected request before closing

std::string peer_address(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "";
  char host[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&a)->sin_addr, host, sizeof host);
  else if (a.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&a)->sin6_addr, host, sizeof host);
  return host;
}

// The requests a connection on probation may make: cheap, read-only, what monitors poll.
bool monitoring_request(const std::string& buf) {
  return buf.starts_with("GET /health ") || buf.starts_with("GET /health?") ||
         buf.starts_with("GET /metrics ") || buf.starts_with("GET /metrics?");
}

}  // namespace

struct GuardedHttpServer::Conn {
  int fd = -1;
  std::string buf;
  std::string client;  // the peer's address
  double deadline = 0;
  bool counted = false;    // against per_client_ / n_counted_
  bool probation = false;  // over a limit: monitoring requests only
  bool closing = false;    // answered; draining until the client closes or the deadline
};

GuardedHttpServer::GuardedHttpServer(FrontOptions options) : options_(options) {
  new_task_queue = [] { return new InlineQueue(); };
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  workers_ =
      std::make_unique<httplib::ThreadPool>(static_cast<size_t>(std::max(1, options_.workers)));
  front_ = std::thread([this] { front_loop(); });
}

GuardedHttpServer::~GuardedHttpServer() {
  shutdown_front();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void GuardedHttpServer::shutdown_front() {
  std::call_once(shutdown_once_, [this] {  // a concurrent caller waits for the first to finish
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    if (front_.joinable()) front_.join();
    if (workers_) workers_->shutdown();  // waits for running handlers
  });
}

bool GuardedHttpServer::client_connected() {
  if (tls_client_fd < 0) return true;
  pollfd p{tls_client_fd, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return true;
  return !(p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  add(sock, "", options_.request_timeout_s);
  return true;
}

void GuardedHttpServer::add(socket_t sock, std::string buffered, double idle_s,
                            std::string client) {
  auto c = std::make_unique<Conn>();
  c->fd = sock;
  c->buf = std::move(buffered);
  c->client = client.empty() ? peer_address(sock) : std::move(client);
  c->deadline = now_s() + (c->buf.empty() ? idle_s : options_.request_timeout_s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::shutdown(sock, SHUT_RDWR);
      ::close(sock);
      return;
    }
    incoming_.push_back(std::move(c));
  }
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void GuardedHttpServer::release(Conn& c) {
  if (!c.counted) return;
  c.counted = false;
  --n_counted_;
  auto it = per_client_.find(c.client);
  if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
}

void GuardedHttpServer::drop(socket_t sock, const char* response) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, sock, nullptr);
  if (response) (void)!::send(sock, response, std::strlen(response), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  if (auto it = conns_.find(sock); it != conns_.end()) {
    release(*it->second);
    conns_.erase(it);
  }
}

void GuardedHttpServer::linger(int fd, const std::string& response) {
  Conn& c = *conns_.at(fd);
  release(c);
  // Closing with unread bytes would reset the connection and could destroy the answer before
  // the client reads it: answer, stop sending, and drain what the client still sends.
  (void)!::send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  c.closing = true;
  std::string().swap(c.buf);
  c.deadline = now_s() + kLingerSeconds;
}

void GuardedHttpServer::admit(std::unique_ptr<Conn> c) {
  static const std::string k503 = framing_error_response(503, "too many connections");
  const int fd = c->fd;
  const int from_client = options_.max_connections_per_client > 0 && per_client_.count(c->client)
                              ? per_client_[c->client]
                              : 0;
  const bool over = n_counted_ >= options_.max_connections ||
                    (options_.max_connections_per_client > 0 &&
                     from_client >= options_.max_connections_per_client);
  if (over) {
    while (probation_.size() >= kProbation) {  // the oldest goes: a flood cannot hold them all
      const int old = probation_.front();
      probation_.pop_front();
      if (auto it = conns_.find(old); it != conns_.end() && it->second->probation)
        drop(old, k503.c_str());
    }
    c->probation = true;
    c->deadline = std::min(c->deadline, now_s() + kProbationSeconds);
    probation_.push_back(fd);
  } else {
    c->counted = true;
    ++n_counted_;
    ++per_client_[c->client];
  }
  set_blocking(fd, false);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = fd;
  const bool carried = !c->buf.empty();  // a pipelined request may already be whole
  conns_[fd] = std::move(c);
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  if (carried) check(fd);
}

void GuardedHttpServer::check(int fd) {
  static const std::string k503 =
      framing_error_response(503, "too many connections from this client or in all");
  auto it = conns_.find(fd);
  Conn& c = *it->second;
  if (c.closing) return;
  const Framing f = frame_request(c.buf, options_.max_request_bytes);
  if (f.send_continue) {
    static const char k100[] = "HTTP/1.1 100 Continue\r\n\r\n";
    (void)!::send(fd, k100, sizeof k100 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  if (f.kind == Framing::Kind::kWaiting) {
    if (f.need > c.buf.capacity()) c.buf.reserve(f.need);  // one allocation for the body
    return;
  }
  if (f.kind == Framing::Kind::kReject)
    return linger(fd, framing_error_response(f.status, f.message));
  if (c.probation && !monitoring_request(c.buf)) return linger(fd, k503);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  release(c);
  Conn* ready = it->second.release();
  conns_.erase(it);
  workers_->enqueue([this, ready] { serve(std::unique_ptr<Conn>(ready)); });
}

void GuardedHttpServer::front_loop() {
  static const char* k408 =
      "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  epoll_event events[64];
  char tmp[16384];
  for (;;) {
    const int n = epoll_wait(epoll_fd_, events, 64, 100);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t v;
        (void)!::read(wake_fd_, &v, sizeof v);
        continue;
      }
      auto it = conns_.find(fd);
      if (it == conns_.end()) continue;
      Conn& c = *it->second;
      bool closed = false;
      for (;;) {
        const ssize_t r = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r > 0) {
          if (c.closing) continue;  // draining a rejected request
          if (c.buf.empty() && !c.probation) c.deadline = now_s() + options_.request_timeout_s;
          c.buf.append(tmp, static_cast<size_t>(r));
          if (c.buf.size() > options_.max_request_bytes + 65536) break;
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        closed = r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
      }
      // A client may send its request and close at once: a whole request still goes to a handler
      // (which sees the client gone and cancels); anything else is dropped.
      check(fd);
      if (closed && conns_.count(fd)) drop(fd, nullptr);
    }
    std::vector<std::unique_ptr<Conn>> fresh;
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fresh.swap(incoming_);
      stopping = stopping_;
    }
    for (auto& c : fresh) {
      if (stopping) {
        ::shutdown(c->fd, SHUT_RDWR);
        ::close(c->fd);
        continue;
      }
      admit(std::move(c));
    }
    if (stopping) {
      while (!conns_.empty()) drop(conns_.begin()->first, nullptr);
      return;
    }
    const double now = now_s();
    std::vector<int> expired;
    for (const auto& [fd, c] : conns_)
      if (now > c->deadline) expired.push_back(fd);
    for (int fd : expired) {
      const Conn& c = *conns_[fd];
      drop(fd, c.closing || c.buf.empty() ? nullptr : k408);
    }
  }
}

void GuardedHttpServer::serve(std::unique_ptr<Conn> conn) {
  const int fd = conn->fd;
  set_blocking(fd, true);
  BufferedSocketStream strm(fd, std::move(conn->buf), read_timeout_sec_, write_timeout_sec_);
  bool closed = false;
  tls_client_fd = fd;
  const bool ok = process_request(strm, /*close_connection=*/false, closed, nullptr);
  tls_client_fd = -1;
  if (ok && !closed && is_running()) {
    // Back to the front for the next request.
    add(fd, strm.unread(), options_.keep_alive_idle_s, std::move(conn->client));
  } else {
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }
}

}  // namespace rme
