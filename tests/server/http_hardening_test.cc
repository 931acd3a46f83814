// tests/server: the OpenAI parameters end to end (stop, logprobs, seed, logit_bias, echo,
// include_usage) and the abuse cases: deep JSON, slow and idle clients, clients that leave a
// non-streaming request.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>

#include "server/http_fixture.h"

namespace rme {
namespace {

// A connection from `from` (a loopback address: each is another client to the server).
int connect_from(int port, const char* from) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, from, &src.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    ::close(fd);
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends raw bytes on a new connection and reads until the server closes it (or 5 s pass):
// everything received, and whether the server closed the connection.
std::pair<std::string, bool> exchange(int port, const std::string& bytes,
                                      const char* from = "127.0.0.1") {
  const int fd = connect_from(port, from);
  if (fd < 0) return {"", false};
  (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return {got, n == 0};
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

int connect_raw(int port) { return connect_from(port, "127.0.0.1"); }

std::string completion_text(const json& j) { return j["choices"][0]["text"].get<std::string>(); }

// Concatenated "text" of an SSE completion stream, and its finish reason.
std::pair<std::string, std::string> stream_text(const std::string& body) {
  std::string text, finish;
  size_t at = 0;
  while ((at = body.find("data: {", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    json j = json::parse(body.substr(at + 6, end - at - 6), nullptr, false);
    at = end;
    if (j.is_discarded() || j["choices"].empty()) continue;
    text += j["choices"][0].value("text", "");
    if (j["choices"][0]["finish_reason"].is_string()) finish = j["choices"][0]["finish_reason"];
  }
  return {text, finish};
}

TEST_F(HttpTest, StopStringsEndTheCompletionBeforeThemStreamingOrNot) {
  int st;
  const std::string base = R"({"prompt":"Once upon a time","max_tokens":24,"temperature":0,
      "ignore_eos":true)";
  const std::string full = completion_text(post("/v1/completions", base + "}", &st));
  ASSERT_EQ(st, 200);
  ASSERT_GT(full.size(), 20u);
  const std::string stop = full.substr(full.size() / 2, 3);  // likely spans a token boundary
  const std::string want = full.substr(0, full.find(stop));
  json j = post("/v1/completions", base + R"(,"stop":["zzzz", )" + json(stop).dump() + "]}", &st);
  ASSERT_EQ(st, 200) << j.dump();
  EXPECT_EQ(completion_text(j), want);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_LT(j["usage"]["completion_tokens"].get<int>(), 24);
  auto res =
      client().Post("/v1/completions", base + R"(,"stream":true,"stop":)" + json(stop).dump() + "}",
                    "application/json");
  ASSERT_TRUE(res && res->status == 200);
  EXPECT_EQ(stream_text(res->body), std::make_pair(want, std::string("stop")));
  EXPECT_NE(res->body.find("data: [DONE]"), std::string::npos);
  for (int i = 0; i < 50 && metric("rme_requests_total{status=\"stop\"}") < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(metric("rme_requests_total{status=\"stop\"}"), 2);  // counted as stopped, not cancelled
}

TEST_F(HttpTest, LogprobsMatchTheTextAndTheGreedyChoice) {
  int st;
  json j = post("/v1/completions",
                R"({"prompt":"Once upon a time","max_tokens":8,"temperature":0,"logprobs":3,
                    "ignore_eos":true})",
                &st);
  ASSERT_EQ(st, 200) << j.dump();
  const json& lp = j["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 8u);
  std::string joined;
  for (size_t i = 0; i < 8; ++i) {
    joined += lp["tokens"][i].get<std::string>();
    const double chosen = lp["token_logprobs"][i];
    EXPECT_LE(chosen, 0.0);
    ASSERT_EQ(lp["top_logprobs"][i].size(), 3u);
    double best = -1e30, mass = 0;
    for (const auto& [tok, v] : lp["top_logprobs"][i].items()) {
      best = std::max(best, v.get<double>());
      mass += std::exp(v.get<double>());
    }
    EXPECT_NEAR(chosen, best, 1e-5);  // greedy picks the most likely token
    EXPECT_LE(mass, 1.0 + 1e-4);
  }
  EXPECT_EQ(joined, completion_text(j));
  EXPECT_EQ(lp["text_offset"][0], 0);
  json c = post("/v1/chat/completions",
                R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0,
                    "logprobs":true,"top_logprobs":2,"ignore_eos":true})",
                &st);
  ASSERT_EQ(st, 200) << c.dump();
  const json& content = c["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 4u);
  EXPECT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_TRUE(content[0]["bytes"].is_array());
}

TEST_F(HttpTest, SeedsReproduceAndLogitBiasForcesTokens) {
  int st;
  auto sample = [&](const std::string& extra) {
    return completion_text(post("/v1/completions",
                                R"({"prompt":"Once upon a time","max_tokens":16,"temperature":1.0,
                                    "ignore_eos":true)" +
                                    extra + "}",
                                &st));
  };
  const std::string a = sample(R"(,"seed":42)");
  EXPECT_EQ(sample(R"(,"seed":42)"), a);
  bool differs = false;
  for (int s = 43; s < 47 && !differs; ++s) differs = sample(",\"seed\":" + std::to_string(s)) != a;
  EXPECT_TRUE(differs);
  // +100 on one token: every sampled token is that one.
  const int forced = model_->tokenizer->encode(" cat", false).back();
  json j =
      post("/v1/completions",
           R"({"prompt":"Once","max_tokens":5,"ignore_eos":true,"logprobs":0,"logit_bias":{")" +
               std::to_string(forced) + R"(":100}})",
           &st);
  ASSERT_EQ(st, 200) << j.dump();
  EXPECT_EQ(j["choices"][0]["logprobs"]["tokens"].size(), 5u);
  std::string one = model_->tokenizer->decode_token(forced, forced);
  EXPECT_NE(completion_text(j).find(one + one), std::string::npos) << completion_text(j);
}

TEST_F(HttpTest, EchoAndIncludeUsage) {
  int st;
  json j = post("/v1/completions",
                R"({"prompt":"Once upon a time","max_tokens":3,"temperature":0,"echo":true})", &st);
  ASSERT_EQ(st, 200);
  EXPECT_EQ(completion_text(j).rfind("Once upon a time", 0), 0u);
  auto res = client().Post(
      "/v1/completions",
      R"({"prompt":"Hi","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}})",
      "application/json");
  ASSERT_TRUE(res && res->status == 200);
  EXPECT_NE(res->body.find("\"usage\":{\"completion_tokens\""), std::string::npos) << res->body;
}

TEST_F(HttpTest, DeeplyNestedBodiesAreRefusedAndTheServerStaysUp) {
  int st;
  for (const std::string open : {"[", "{\"a\":"}) {
    std::string body = "{\"prompt\":";
    for (int i = 0; i < 3000; ++i) body += open;  // ~3-15 KB, under the body limit
    post("/v1/completions", body, &st);
    EXPECT_TRUE(st == 400 || st == 413) << st;
  }
  EXPECT_TRUE(healthy());
}

// 120 connections trickle a byte every 200 ms; /health must keep answering at once, and the
// front closes them when their request deadline passes (2 s here).
TEST_F(HttpTest, SlowClientsDoNotStarveOthers) {
  std::vector<int> fds;
  for (int i = 0; i < 120; ++i) {
    const int fd = connect_raw(server_->port());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n";
  for (size_t k = 0; k < 5; ++k) {
    for (int fd : fds) (void)!::send(fd, head.data() + k, 1, MSG_NOSIGNAL);
    const auto t0 = std::chrono::steady_clock::now();
    auto res = client().Get("/health");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_LT(s, 1.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  char c;
  int closed = 0;
  for (int fd : fds) {
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string got;
    ssize_t n;
    while ((n = ::recv(fd, &c, 1, 0)) > 0) got += c;
    closed += n == 0 && (got.empty() || got.find("408") != std::string::npos);
    ::close(fd);
  }
  EXPECT_EQ(closed, 120);
  EXPECT_TRUE(healthy());
}

// A non-streaming client that sends its request and leaves: the request is cancelled.
TEST_F(HttpTest, ANonStreamingClientThatLeavesCancelsItsRequest) {
  const double before = std::max(0.0, metric("rme_requests_total{status=\"cancelled\"}"));
  for (int i = 0; i < 3; ++i) {
    const int fd = connect_raw(server_->port());
    ASSERT_GE(fd, 0);
    const std::string body = R"({"prompt":"Once upon a time","max_tokens":32,"ignore_eos":true})";
    const std::string req =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  for (int i = 0; i < 50 && metric("rme_requests_total{status=\"cancelled\"}") - before < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_GE(metric("rme_requests_total{status=\"cancelled\"}") - before, 3);
  for (int i = 0; i < 50 && metric("rme_kv_blocks_used") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(metric("rme_kv_blocks_used"), 0);
  EXPECT_TRUE(healthy());
}

const std::string kPost = "POST /v1/completions HTTP/1.1\r\nHost: x\r\n";
const std::string kBody = R"({"prompt":"Once upon a time","max_tokens":2})";

// Request smuggling: a request a proxy could frame one way and rme another is answered 400 and
// its connection closed, so nothing after it on the connection is ever read as a request.
TEST_F(HttpTest, AmbiguousFramingIsRefusedAndTheConnectionClosed) {
  const std::string smuggled = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const std::string& head :
       {std::string("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"),
        std::string("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"),
        "Content-Length: 2\r\nContent-Length: " + std::to_string(kBody.size()) + "\r\n",
        "Content-Length : " + std::to_string(kBody.size()) + "\r\n"}) {
    auto [got, closed] = exchange(server_->port(), kPost + head + "\r\n" + kBody + smuggled);
    EXPECT_EQ(got.rfind("HTTP/1.1 400 ", 0), 0u) << head << got;
    EXPECT_EQ(count(got, "HTTP/1.1 "), 1) << head << got;  // the smuggled request: no answer
    EXPECT_TRUE(closed) << head;
  }
  auto [gz, gz_closed] = exchange(server_->port(), kPost + "Transfer-Encoding: gzip\r\n\r\n");
  EXPECT_EQ(gz.rfind("HTTP/1.1 501 ", 0), 0u) << gz;
  EXPECT_TRUE(gz_closed);
  EXPECT_TRUE(healthy());
}

TEST_F(HttpTest, OversizedChunksAreRefusedAndChunkedRequestsStillWork) {
  for (const std::string size : {"ffffffffffffffffffffffff", "10000000000000000", "1001"}) {
    auto [got, closed] =
        exchange(server_->port(), kPost + "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 413 ", 0), 0u) << size << got;
    EXPECT_TRUE(closed);
  }
  // A valid chunked request, then a pipelined one on the same connection: both answered.
  char hex[16];
  std::snprintf(hex, sizeof hex, "%zx", kBody.size() - 5);
  const std::string chunked = kPost + "Transfer-Encoding: chunked\r\n\r\n" + hex + "\r\n" +
                              kBody.substr(0, kBody.size() - 5) + "\r\n5\r\n" +
                              kBody.substr(kBody.size() - 5) + "\r\n0\r\n\r\n";
  auto [got, closed] = exchange(
      server_->port(), chunked + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 200 ", 0), 0u) << got;
  EXPECT_NE(got.find("\"completion_tokens\":2"), std::string::npos) << got;
  EXPECT_EQ(count(got, "HTTP/1.1 200 "), 2) << got;
  EXPECT_TRUE(closed);
}

// 1,100 half-sent requests from one address: that client gets at most its share of the front
// and 503 past it, while /health and /metrics still answer (even from that address) and
// another client is served as usual.
TEST_F(HttpTest, OneClientCannotHoldEveryConnectionSlot) {
  std::vector<int> fds;
  const std::string half = kPost + "Content-Length: 40\r\n\r\n{";
  for (int i = 0; i < 1100; ++i) {
    const int fd = connect_from(server_->port(), "127.0.0.1");
    ASSERT_GE(fd, 0) << i;
    (void)!::send(fd, half.data(), half.size(), MSG_NOSIGNAL);
    fds.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the front has seen them all
  for (const char* path : {"/health", "/metrics"}) {
    const auto t0 = std::chrono::steady_clock::now();
    auto [got, closed] = exchange(server_->port(), std::string("GET ") + path +
                                                       " HTTP/1.1\r\nHost: x\r\nConnection: "
                                                       "close\r\n\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 200 ", 0), 0u) << path << got;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  }
  const std::string req = kPost + "Content-Length: " + std::to_string(kBody.size()) +
                          "\r\nConnection: close\r\n\r\n" + kBody;
  auto [same, same_closed] = exchange(server_->port(), req, "127.0.0.1");
  EXPECT_EQ(same.rfind("HTTP/1.1 503 ", 0), 0u) << same;  // over its share: refused
  auto [other, other_closed] = exchange(server_->port(), req, "127.0.0.2");
  EXPECT_EQ(other.rfind("HTTP/1.1 200 ", 0), 0u) << other;
  for (int fd : fds) ::close(fd);
  for (int i = 0; i < 50 && !healthy(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(healthy());
}

}  // namespace
}  // namespace rme
