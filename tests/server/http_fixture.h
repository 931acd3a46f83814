// tests/server: HttpTest, a server on 127.0.0.1 over rme-mini (batch-invariant, small limits)
// shared by the HTTP test files, with helpers to post, check health and read metrics.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "formats/model_io.h"
#include "kernels/matmul.h"
#include "server/http_server.h"

namespace rme {

using nlohmann::json;

class HttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = load_model(std::string(RME_SOURCE_DIR) + "/data/models/rme-mini");
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = new LoadedModel(std::move(*m));
    pool_ = new ThreadPool(2);
    ServingOptions so;
    so.budget.max_tokens = 64;
    BatchEngineOptions eo;
    eo.max_seq_len = 128;
    eo.n_block = 64;  // 1024 positions: 64 streams of ~20 tokens must share it
    loop_ = ServingLoop::create(*model_->model, *pool_, eo, so).value().release();
    loop_->start();
    HttpOptions ho;
    ho.port = 0;
    ho.max_body_bytes = 4096;
    ho.limits.max_prompt_tokens = 64;
    ho.limits.max_new_tokens = 32;
    ho.api_key = "";
    ho.request_timeout_s = 2;  // the slow-client tests wait for it
    ho.max_connections_per_client = 200;
    server_ = new HttpServer(*loop_, *model_->tokenizer, ho);
    ASSERT_TRUE(server_->bind().ok());
    thread_ = new std::thread([] { (void)server_->listen(); });
  }
  static void TearDownTestSuite() {
    server_->stop();
    thread_->join();
    loop_->stop();
    delete thread_;
    delete server_;
    delete loop_;
    delete pool_;
    delete model_;
  }
  static httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(120, 0);
    return c;
  }
  static json post(const std::string& path, const std::string& body, int* status) {
    auto res = client().Post(path.c_str(), body, "application/json");
    *status = res ? res->status : -1;
    return res ? json::parse(res->body, nullptr, false) : json();
  }
  static bool healthy() {
    int st;
    json j = post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":3})", &st);
    return st == 200 && j["usage"]["completion_tokens"] == 3;
  }
  static double metric(const std::string& name) {
    auto res = client().Get("/metrics");
    if (!res) return -1;
    const size_t at = res->body.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::atof(res->body.c_str() + at + name.size() + 2);
  }

  inline static LoadedModel* model_;
  inline static ThreadPool* pool_;
  inline static ServingLoop* loop_;
  inline static HttpServer* server_;
  inline static std::thread* thread_;
};

}  // namespace rme
