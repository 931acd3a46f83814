// server: HTTP routes, authentication, limits and SSE streaming.
#include "server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>

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

}  // namespace

HttpServer::HttpServer(ServingLoop& loop, const Tokenizer& tokenizer, HttpOptions options)
    : loop_(loop),
      tok_(tokenizer),
      options_(std::move(options)),
      http_(std::make_unique<httplib::Server>()) {
  for (int id = 0; id < tok_.n_vocab(); ++id)
    if (tok_.is_eos(id)) stop_ids_.push_back(id);
  routes();
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::routes() {
  httplib::Server& s = *http_;
  const int threads = options_.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
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

  auto complete = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res) {
      auto parsed = parse_api_request(req.body, chat, tok_, options_.limits);
      if (!parsed.ok()) {
        loop_.metrics().add("requests_total{status=\"invalid\"}");
        return error(res, 400, parsed.status().message());
      }
      auto r = std::make_shared<ApiRequest>(std::move(*parsed));
      if (r->model.empty()) r->model = options_.model_name;
      r->params.stop_ids = stop_ids_;
      const int n_prompt = static_cast<int>(r->params.prompt.size());
      if (n_prompt + r->params.max_new > loop_.max_seq_len())
        return error(res, 400,
                     "prompt (" + std::to_string(n_prompt) + " tokens) + max_tokens (" +
                         std::to_string(r->params.max_new) + ") exceeds the context of " +
                         std::to_string(loop_.max_seq_len()));
      auto stream = loop_.submit(r->params);
      const std::string id = next_id(chat ? "chatcmpl-" : "cmpl-");
      const int64_t created = unix_now();
      if (!r->stream) {
        std::string text;
        int prev = r->params.prompt.back(), tok, n = 0;
        for (;;) {
          if (stream->next(&tok, 1.0)) {
            text += tok_.decode_token(prev, tok);
            prev = tok;
            ++n;
          } else if (stream->finished() != FinishReason::kNone) {
            break;  // (httplib 0.11 cannot see a non-streaming client leave; max_tokens bounds it)
          }
        }
        if (stream->finished() == FinishReason::kError) return error(res, 400, stream->error());
        res.set_content(dump(completion_body(*r, id, created, text,
                                             finish_reason_name(stream->finished()), n_prompt, n)),
                        "application/json");
        return;
      }
      // Server-sent events; a failed write means the client left: cancel and free its blocks.
      struct State {
        int prev;
        Utf8Stream utf8;
        bool sent_role = false, done = false;
      };
      auto st = std::make_shared<State>(State{r->params.prompt.back(), {}, false, false});
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider(
          "text/event-stream",
          [this, r, stream, st, id, created](size_t, httplib::DataSink& sink) {
            auto send = [&](const json& j) {
              const std::string ev = "data: " + dump(j) + "\n\n";
              return sink.write(ev.data(), ev.size());
            };
            if (r->chat && !st->sent_role) {
              json first = chunk_body(*r, id, created, "", nullptr);
              first["choices"][0]["delta"] = {{"role", "assistant"}, {"content", ""}};
              st->sent_role = true;
              if (!send(first)) return stream->cancel(), false;
            }
            int tok;
            std::string text;
            while (stream->next(&tok, 0.0)) {  // everything already produced, in one event
              text += st->utf8.push(tok_.decode_token(st->prev, tok));
              st->prev = tok;
            }
            if (text.empty() && stream->finished() == FinishReason::kNone) {
              if (stream->next(&tok, 0.25)) {
                text += st->utf8.push(tok_.decode_token(st->prev, tok));
                st->prev = tok;
              } else if (!sink.is_writable()) {
                stream->cancel();
                return false;
              }
            }
            if (!text.empty() && !send(chunk_body(*r, id, created, text, nullptr))) {
              stream->cancel();
              return false;
            }
            const FinishReason fin = stream->finished();
            if (fin != FinishReason::kNone && !stream->next(&tok, 0.0)) {
              const std::string tail = st->utf8.flush();
              if (!tail.empty()) send(chunk_body(*r, id, created, tail, nullptr));
              if (fin == FinishReason::kError) {
                const std::string ev = "data: " + api_error(stream->error()) + "\n\n";
                sink.write(ev.data(), ev.size());
              } else {
                send(chunk_body(*r, id, created, "", finish_reason_name(fin)));
              }
              sink.write("data: [DONE]\n\n", 14);
              sink.done();
              st->done = true;
            }
            return true;
          },
          [stream](bool) {
            if (stream->finished() == FinishReason::kNone) stream->cancel();
          });
    };
  };
  s.Post("/v1/completions", complete(false));
  s.Post("/v1/chat/completions", complete(true));
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
  if (!http_->listen_after_bind()) return io_error("serve: listening failed");
  return Status::Ok();
}

void HttpServer::stop() {
  if (http_) http_->stop();
}

}  // namespace rme
