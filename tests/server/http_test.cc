// tests/server: the HTTP server on 127.0.0.1 against hostile and concurrent clients — malformed
// JSON, wrong types, oversized bodies, limits, authentication, 64 concurrent streams, clients
// that vanish mid-stream. After each, the server must still answer correctly.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "server/http_fixture.h"

namespace rme {
namespace {

TEST_F(HttpTest, BadRequestsGetOpenAiStyle4xxErrors) {
  const std::pair<const char*, const char*> cases[] = {
      {"/v1/completions", "{not json"},
      {"/v1/completions", "[1, 2]"},
      {"/v1/completions", R"({"prompt": 5})"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": "ten"})"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 0})"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 33})"},  // over the limit
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 2.5})"},
      {"/v1/completions", R"({"prompt": "hi", "temperature": -1})"},
      {"/v1/completions", R"({"prompt": "hi", "stream": "yes"})"},
      {"/v1/completions", R"({"prompt": [1, 99999]})"},
      {"/v1/completions", R"({"prompt": [1, -2]})"},
      {"/v1/completions", R"({"prompt": "hi", "n": 2})"},
      {"/v1/chat/completions", R"({"messages": []})"},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": 7}]})"},
  };
  for (const auto& [path, body] : cases) {
    int st;
    json j = post(path, body, &st);
    EXPECT_EQ(st, 400) << body;
    EXPECT_TRUE(j.contains("error") && j["error"]["message"].is_string()) << body;
  }
  std::string long_prompt = "[";
  for (int i = 0; i < 100; ++i) long_prompt += (i ? ",5" : "5");
  int st;
  post("/v1/completions", R"({"prompt": )" + long_prompt + "]}", &st);
  EXPECT_EQ(st, 400);  // 100 tokens > the 64-token prompt limit
  post("/v1/completions", std::string(10000, ' '), &st);
  EXPECT_EQ(st, 413);  // over the body limit
  auto res = client().Get("/nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_TRUE(json::parse(res->body, nullptr, false).contains("error"));
  EXPECT_TRUE(healthy());
}

// What only the engine can check (here a logit_bias id past the vocabulary) is one check,
// BatchEngine::validate, run before a stream starts: a streamed request gets a 400, not a 200
// whose events end in an error.
TEST_F(HttpTest, RequestsTheEngineRefusesGet400BeforeAnyStream) {
  for (const char* stream : {"false", "true"}) {
    for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
      const std::string body =
          std::string(path[4] == 'c' && path[5] == 'h'
                          ? R"({"messages": [{"role": "user", "content": "hi"}])"
                          : R"({"prompt": "hi")") +
          R"(, "logit_bias": {"99999": 1}, "stream": )" + stream + "}";
      int st;
      json j = post(path, body, &st);
      EXPECT_EQ(st, 400) << body;
      ASSERT_TRUE(j.contains("error")) << body;
      EXPECT_NE(j["error"]["message"].get<std::string>().find("logit_bias"), std::string::npos);
    }
  }
  EXPECT_TRUE(healthy());
}

TEST_F(HttpTest, CompletionsChatModelsHealthAndMetrics) {
  int st;
  json c = post("/v1/completions",
                R"({"prompt":"Once upon a time","max_tokens":5,"temperature":0})", &st);
  ASSERT_EQ(st, 200) << c.dump();
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["usage"]["completion_tokens"], 5);
  json chat =
      post("/v1/chat/completions",
           R"({"messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":4})", &st);
  ASSERT_EQ(st, 200) << chat.dump();
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  auto models = client().Get("/v1/models");
  ASSERT_TRUE(models && models->status == 200);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "rme");
  EXPECT_EQ(client().Get("/health")->status, 200);
  EXPECT_GT(metric("rme_generated_tokens_total"), 0);
  EXPECT_GT(metric("rme_time_to_first_token_seconds_count"), 0);
}

// 64 clients stream at once; each must get exactly its tokens and a [DONE].
TEST_F(HttpTest, SixtyFourConcurrentStreams) {
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 64; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c = client();
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.body = json{
          {"prompt", "Story number " + std::to_string(i) + ":"},
          {"max_tokens", 6},
          {"ignore_eos", true},
          {"stream",
           true}}.dump();
      req.set_header("Content-Type", "application/json");
      std::string body;
      req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
        body.append(d, n);
        return true;
      };
      httplib::Response res;
      httplib::Error err;
      if (!c.send(req, res, err) || res.status != 200) {
        ADD_FAILURE() << "client " << i << ": error " << static_cast<int>(err) << " status "
                      << res.status;
        return;
      }
      if (body.find("data: [DONE]") != std::string::npos &&
          body.find("\"finish_reason\":\"length\"") != std::string::npos) {
        ++ok;
      } else {
        ADD_FAILURE() << "client " << i << ": " << body;
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 64);
  EXPECT_TRUE(healthy());
}

// Clients that hang up after the first event: their requests are cancelled and every KV block
// comes back.
TEST_F(HttpTest, ClientsThatDisconnectMidStreamAreCancelled) {
  const double before = metric("rme_requests_total{status=\"cancelled\"}");
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&] {
      httplib::Client c = client();
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.body = R"({"prompt":"Once upon a time","max_tokens":32,"ignore_eos":true,"stream":true})";
      req.set_header("Content-Type", "application/json");
      int events = 0;
      req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++events < 2; };
      httplib::Response res;
      httplib::Error err;
      c.send(req, res, err);  // fails: we hung up
    });
  for (auto& t : clients) t.join();
  for (int i = 0; i < 100 && metric("rme_kv_blocks_used") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(metric("rme_kv_blocks_used"), 0);
  EXPECT_GE(metric("rme_requests_total{status=\"cancelled\"}") - std::max(0.0, before), 6);
  EXPECT_TRUE(healthy());
}

}  // namespace
}  // namespace rme
