// server: GuardedHttpServer, cpp-httplib's server behind an event-driven front: one epoll thread
// reads every request completely (headers and body, within a deadline and a connection limit)
// before a worker thread sees it, so slow or idle clients cannot occupy the workers.
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace rme {

struct FrontOptions {
  int workers = 96;               // handler threads (each streaming client holds one)
  double request_timeout_s = 10;  // to send a whole request, headers and body
  double keep_alive_idle_s = 5;   // between requests on a kept-alive connection
  int max_connections = 1024;     // waiting in the front, all clients together
  // Waiting in the front from one address (0: no limit). Behind a proxy every connection comes
  // from the proxy's address: raise it to the proxy's connection limit or set 0.
  int max_connections_per_client = 256;
  size_t max_request_bytes = 1 << 20;  // the body, at most (413 past it)
};

// Thread-safe like httplib::Server: handlers run on the workers; stop() from any thread.
// A request whose connection goes away is seen by handlers through client_connected().
// Framing is strict (http_framing.h): an ambiguous request is answered 4xx and its connection
// closed. A connection over either connection limit is put on probation: held briefly, never
// more than kProbation of them (the oldest answered 503 first), and served only if its request
// is GET /health or GET /metrics, so a flood from one client or many leaves those answerable.
class GuardedHttpServer : public httplib::Server {
 public:
  explicit GuardedHttpServer(FrontOptions options);
  ~GuardedHttpServer() override;
  // Ends the front and the workers after httplib's listen loop has returned.
  void shutdown_front();

  // From a handler: false once the client has closed or reset its connection (a non-streaming
  // request can then be cancelled). True outside handlers.
  static bool client_connected();

 private:
  struct Conn;
  bool process_and_close_socket(socket_t sock) override;  // called inline by the listen loop
  // `client`: the peer's address when known (a kept-alive connection); else looked up.
  void add(socket_t sock, std::string buffered, double idle_s, std::string client = "");
  void front_loop();
  void admit(std::unique_ptr<Conn> c);  // front thread: a new or kept-alive connection
  void check(int fd);                   // front thread: hand over, reject or keep waiting
  void release(Conn& c);                // front thread: stops counting c against the limits
  void linger(int fd, const std::string& response);  // answer, then drain until closed
  void serve(std::unique_ptr<Conn> conn);
  void drop(socket_t sock, const char* response);

  FrontOptions options_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: wakes the front for new connections and shutdown
  std::mutex mu_;     // guards incoming_, conns_ (front thread and listener/workers)
  std::vector<std::unique_ptr<Conn>> incoming_;
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;  // owned by the front thread
  // Front thread only: counted connections per client address and in all, and the probation
  // queue (oldest first; entries of connections gone since are skipped).
  std::unordered_map<std::string, int> per_client_;
  int n_counted_ = 0;
  std::deque<int> probation_;
  bool stopping_ = false;
  std::once_flag shutdown_once_;
  std::thread front_;
  std::unique_ptr<httplib::ThreadPool> workers_;
};

}  // namespace rme
