// server: HTTP routes, authentication, limits and SSE streaming.
#include "server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>

#include "core/log.h"
#include "server/http_front.h"

namespace rme {

using nlohmann::json;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string next_id(const char* prefix) {
  static std::atomic<int64_t> n{0};
  return std::string(prefix) + std::to_string(unix_now()) + "-" + std::to_string(n++);
}

void error(httplib::Response& res, int status, const std::string& message,
           const std::string& type = "invalid_request_error") {
  res.status = status;
  res.set_content(api_error(message, type), "application/json");
}

// A request that failed while generating: the client's fault (400) only for bad input found at
// admission; anything else (I/O, a changed checkpoint, an engine error) is the server's (500).
int http_status(const Status& st) {
  return st.code() == StatusCode::kInvalidArgument     ? 400
         : st.code() == StatusCode::kResourceExhausted ? 503
                                                       : 500;
}
const char* error_type(int status) {
  return status == 400 ? "invalid_request_error" : "server_error";
}

// What a client is told of a failed request: the cause without server paths; the whole
// message goes to the log.
std::string client_message(const Status& st) {
  log_error("request failed: " + st.message());
  return redact_paths(st.message());
}

void append(TextPiece& to, TextPiece from) {
  to.text += from.text;
  for (auto& t : from.tokens) to.tokens.push_back(std::move(t));
}

}  // namespace

HttpServer::HttpServer(ServingLoop& loop, const Tokenizer& tokenizer, HttpOptions options)
    : loop_(loop),
      tok_(tokenizer),
      options_(std::move(options)),
      http_(std::make_unique<GuardedHttpServer>(
          FrontOptions{options_.threads, options_.request_timeout_s, 5.0, options_.max_connections,
                       options_.max_connections_per_client, options_.max_body_bytes})),
      stop_ids_(tok_.stop_ids()) {
  routes();
}

HttpServer::~HttpServer() {
  stop();
  if (http_) http_->shutdown_front();
}

void HttpServer::routes() {
  httplib::Server& s = *http_;
  s.set_payload_max_length(options_.max_body_bytes);
  // httplib 0.11 listens with a backlog of 5, so a burst of clients gets connections reset;
  // remember the socket to widen the backlog after binding.
  s.set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd_ = sock;
  });
  s.set_read_timeout(30, 0);
  s.set_write_timeout(30, 0);
  // Authentication and body limits before any handler.
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!options_.api_key.empty() && req.path != "/health") {
      if (req.get_header_value("Authorization") != "Bearer " + options_.api_key) {
        error(res, 401, "missing or wrong API key (Authorization: Bearer ...)",
              "authentication_error");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const int st = res.status;
    error(res, st,
          st == 413   ? "request body too large"
          : st == 404 ? "no such route"
                      : "bad request (HTTP " + std::to_string(st) + ")");
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    error(res, 500, "internal error", "server_error");
  });

  s.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(loop_.metrics().render(), "text/plain; version=0.0.4");
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json m = {
        {"id", options_.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "rme"}};
    res.set_content(dump({{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });

  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    complete(req, res, false);
  });
  s.Post("/v1/chat/completions",
         [this](const httplib::Request& req, httplib::Response& res) { complete(req, res, true); });
}

void HttpServer::complete(const httplib::Request& req, httplib::Response& res, bool chat) {
  auto parsed = parse_api_request(req.body, chat, tok_, options_.limits);
  if (!parsed.ok()) {
    loop_.metrics().add("requests_total{status=\"invalid\"}");
    return error(res, 400, parsed.status().message());
  }
  auto r = std::make_shared<ApiRequest>(std::move(*parsed));
  if (r->model.empty()) r->model = options_.model_name;
  r->params.stop_ids = stop_ids_;
  const int n_prompt = static_cast<int>(r->params.prompt.size());
  if (Status v = loop_.validate(r->params); !v.ok()) {
    loop_.metrics().add("requests_total{status=\"invalid\"}");
    return error(res, 400, v.message());
  }
  // The loop detokenizes each token once, in this request's CompletionText, which also decides
  // the stop strings there (the request table ends the request at the stop's token); this
  // thread only renders what the stream releases.
  auto stream = loop_.submit_text(
      r->params, std::make_shared<CompletionText>(tok_, r->params.prompt.back(), r->stop));
  const std::string id = next_id(chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = unix_now();
  const size_t echo_len = r->echo_text.size();
  if (!r->stream) {
    TextPiece all;
    for (;;) {
      TextPiece p;
      if (stream->next_text(&p, 0.1))
        append(all, std::move(p));
      else if (stream->finished() != FinishReason::kNone)
        break;
      if (!GuardedHttpServer::client_connected()) {  // nobody will read the answer
        stream->cancel();
        return;
      }
    }
    const FinishReason fin = stream->finished();
    if (fin == FinishReason::kError) {
      const int status = http_status(stream->error());
      return error(res, status, client_message(stream->error()), error_type(status));
    }
    res.set_content(
        dump(completion_body(*r, id, created, r->echo_text + all.text, finish_reason_name(fin),
                             n_prompt, stream->completion_tokens(),
                             logprobs_json(*r, tok_, all.tokens, echo_len))),
        "application/json");
    return;
  }
  // Server-sent events; a failed write means the client left: cancel and free its blocks.
  auto started = std::make_shared<bool>(false);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, r, stream, started, id, created, echo_len, n_prompt](size_t, httplib::DataSink& sink) {
        auto send = [&](const json& j) {
          const std::string ev = "data: " + dump(j) + "\n\n";
          return sink.write(ev.data(), ev.size());
        };
        auto chunk = [&](const TextPiece& p) {
          return chunk_body(*r, id, created, p.text, nullptr,
                            logprobs_json(*r, tok_, p.tokens, echo_len));
        };
        if (!*started) {
          *started = true;
          json first = chunk_body(*r, id, created, r->echo_text, nullptr);
          if (r->chat) first["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
          if ((r->chat || r->echo) && !send(first)) return stream->cancel(), false;
        }
        // finished() before draining: text released before the finish is then never missed.
        const FinishReason fin = stream->finished();
        TextPiece piece;
        if (!stream->next_text(&piece, 0.0) && fin == FinishReason::kNone &&
            !stream->next_text(&piece, 0.25) && !sink.is_writable()) {
          stream->cancel();
          return false;
        }
        if (!piece.empty() && !send(chunk(piece))) {
          stream->cancel();
          return false;
        }
        if (fin == FinishReason::kNone) return true;
        if (fin == FinishReason::kError) {
          const std::string ev =
              "data: " + api_error(client_message(stream->error()), "server_error") + "\n\n";
          sink.write(ev.data(), ev.size());
        } else {
          send(chunk_body(*r, id, created, "", finish_reason_name(fin)));
        }
        if (r->include_usage) {
          json u = chunk_body(*r, id, created, "", nullptr);
          u["choices"] = json::array();
          u["usage"] = usage_json(n_prompt, stream->completion_tokens());
          send(u);
        }
        sink.write("data: [DONE]\n\n", 14);
        sink.done();
        return true;
      },
      [stream](bool) {
        if (!stream->cancelled() && stream->finished() == FinishReason::kNone) stream->cancel();
      });
}

Status HttpServer::bind() {
  if (options_.port == 0) {
    port_ = http_->bind_to_any_port(options_.host);
    if (port_ < 0) return io_error("serve: cannot bind " + options_.host);
  } else {
    if (!http_->bind_to_port(options_.host, options_.port))
      return io_error("serve: cannot bind " + options_.host + ":" + std::to_string(options_.port) +
                      " (in use?)");
    port_ = options_.port;
  }
  if (listen_fd_ >= 0) ::listen(listen_fd_, 1024);  // Linux updates a listening socket's backlog
  return Status::Ok();
}

Status HttpServer::listen() {
  const bool ok = http_->listen_after_bind();
  http_->shutdown_front();  // joins the front and waits for running handlers
  if (!ok) return io_error("serve: listening failed");
  return Status::Ok();
}

void HttpServer::stop() {
  if (http_) http_->stop();  // only signals: safe from a signal handler; listen() then returns
}

}  // namespace rme
