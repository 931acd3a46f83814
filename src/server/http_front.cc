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

enum class Completeness { kWaiting, kComplete, kHandOver };

// Whether buf holds a whole request. kHandOver: not worth waiting for (malformed, too large):
// httplib reads the rest itself and answers with the right error.
Completeness request_state(std::string& buf, size_t max_bytes, bool* wants_continue) {
  *wants_continue = false;
  const size_t he = buf.find("\r\n\r\n");
  if (he == std::string::npos)
    return buf.size() > 65536 ? Completeness::kHandOver : Completeness::kWaiting;
  std::string head = buf.substr(0, he + 2);
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // Every rme route reads JSON whatever the declared type; `curl -d` declares a form, which
  // cpp-httplib caps at 8 KB (413 for a long prompt). Declare JSON instead (once: then recount).
  static const std::string kForm = "\r\ncontent-type: application/x-www-form-urlencoded";
  if (const size_t ct = head.find(kForm); ct != std::string::npos) {
    buf.replace(ct + kForm.size() - 33, 33, "application/json");
    return request_state(buf, max_bytes, wants_continue);
  }
  const size_t body_at = he + 4, have = buf.size() - body_at;
  if (head.find("\r\ntransfer-encoding:") != std::string::npos) {
    if (buf.find("\r\n0\r\n\r\n", he) != std::string::npos ||
        buf.compare(body_at, 5, "0\r\n\r\n") == 0)
      return Completeness::kComplete;
    return buf.size() > max_bytes ? Completeness::kHandOver : Completeness::kWaiting;
  }
  uint64_t length = 0;
  const size_t cl = head.find("\r\ncontent-length:");
  if (cl != std::string::npos) {
    char* end = nullptr;
    length = std::strtoull(head.c_str() + cl + 17, &end, 10);
    if (end == head.c_str() + cl + 17) return Completeness::kHandOver;
  }
  if (length > max_bytes) return Completeness::kHandOver;  // httplib answers 413
  if (have >= length) return Completeness::kComplete;
  const size_t ex = head.find("\r\nexpect: 100-continue\r\n");
  if (ex != std::string::npos) {
    // Answer the interim response here and drop the header, so httplib does not send another.
    *wants_continue = true;
    buf.erase(ex + 2, 22);  // "expect: 100-continue\r\n"
  }
  return Completeness::kWaiting;
}

}  // namespace

struct GuardedHttpServer::Conn {
  int fd = -1;
  std::string buf;
  double deadline = 0;
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

void GuardedHttpServer::add(socket_t sock, std::string buffered, double idle_s) {
  auto c = std::make_unique<Conn>();
  c->fd = sock;
  c->buf = std::move(buffered);
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

void GuardedHttpServer::drop(socket_t sock, const char* response) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, sock, nullptr);
  if (response) (void)!::send(sock, response, std::strlen(response), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  conns_.erase(sock);
}

void GuardedHttpServer::front_loop() {
  static const char* k408 =
      "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  static const char* k503 =
      "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  epoll_event events[64];
  char tmp[16384];
  // Hands the connection to a worker once its request is whole (or not worth waiting for).
  auto check = [&](int fd) {
    auto it = conns_.find(fd);
    bool wants_continue = false;
    const Completeness st =
        request_state(it->second->buf, options_.max_request_bytes, &wants_continue);
    if (wants_continue) {
      static const char k100[] = "HTTP/1.1 100 Continue\r\n\r\n";
      (void)!::send(fd, k100, sizeof k100 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (st == Completeness::kWaiting) return;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    Conn* ready = it->second.release();
    conns_.erase(it);
    workers_->enqueue([this, ready] { serve(std::unique_ptr<Conn>(ready)); });
  };
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
          if (c.buf.empty()) c.deadline = now_s() + options_.request_timeout_s;
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
      const int fd = c->fd;
      if (stopping || static_cast<int>(conns_.size()) >= options_.max_connections) {
        (void)!::send(fd, k503, std::strlen(k503), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::shutdown(fd, SHUT_RDWR);
        ::close(fd);
        continue;
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
    if (stopping) {
      while (!conns_.empty()) drop(conns_.begin()->first, nullptr);
      return;
    }
    const double now = now_s();
    std::vector<int> expired;
    for (const auto& [fd, c] : conns_)
      if (now > c->deadline) expired.push_back(fd);
    for (int fd : expired) drop(fd, conns_[fd]->buf.empty() ? nullptr : k408);
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
    add(fd, strm.unread(), options_.keep_alive_idle_s);  // back to the front for the next one
  } else {
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }
}

}  // namespace rme
