// server: HttpServer, the OpenAI-compatible HTTP front end (cpp-httplib) over a ServingLoop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "server/openai.h"
#include "server/serving_loop.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace rme {

class GuardedHttpServer;

struct HttpOptions {
  std::string host = "127.0.0.1";  // localhost unless asked otherwise
  int port = 8080;                 // 0 = any free port (tests)
  std::string api_key;             // non-empty: require "Authorization: Bearer <key>"
  size_t max_body_bytes = 1 << 20;
  int threads = 96;                      // request handlers (each streaming client holds one)
  double request_timeout_s = 10;         // a client must send its whole request within this
  int max_connections = 1024;            // connections still sending their request, at most
  int max_connections_per_client = 256;  // of those, from one address (0: no limit)
  std::string model_name = "rme";
  ApiLimits limits;
};

// Routes: POST /v1/completions, POST /v1/chat/completions (both with "stream": true over SSE),
// GET /v1/models, /health, /metrics (Prometheus text). Borrows the loop and tokenizer. Every
// malformed, unsupported or out-of-range request gets a 4xx JSON error in OpenAI's shape; a
// failure while generating (e.g. the checkpoint changed on disk) a 500 for that request only. A
// request is read whole by an event-driven front before a handler runs (GuardedHttpServer), so
// slow clients cannot starve the others; a client that goes away, streaming or not, has its
// request cancelled (blocks freed). Thread-safe: stop() may be called from any thread.
class HttpServer {
 public:
  HttpServer(ServingLoop& loop, const Tokenizer& tokenizer, HttpOptions options);
  ~HttpServer();
  // Binds (port 0 picks one); then listen() serves until stop().
  Status bind();
  int port() const { return port_; }
  Status listen();
  void stop();

 private:
  void routes();
  void complete(const httplib::Request& req, httplib::Response& res, bool chat);
  ServingLoop& loop_;
  const Tokenizer& tok_;
  HttpOptions options_;
  std::unique_ptr<GuardedHttpServer> http_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::vector<int> stop_ids_;  // Tokenizer::stop_ids(), found once
};

}  // namespace rme
