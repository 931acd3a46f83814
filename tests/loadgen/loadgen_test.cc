// Tests: the load generator against a stub streaming server on 127.0.0.1 (pool bound in open and
// closed loop, latency from the due time, failures reported not thrown), SSE splitting,
// percentiles and trace parsing.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "loadgen/load_generator.h"

namespace rme {
namespace {

// Streams two SSE events (split across chunks) and [DONE] after `hold_ms`, counting how many
// requests are in flight at once.
class StubServer {
 public:
  explicit StubServer(int hold_ms) {
    server_.Post("/v1/completions", [this, hold_ms](const httplib::Request&,
                                                    httplib::Response& res) {
      const int now = ++in_flight_;
      int seen = max_in_flight_.load();
      while (now > seen && !max_in_flight_.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
      --in_flight_;
      res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
        const std::string a = "data: {\"choices\":[{\"text\":\"\"}]}\n\ndata: {\"choi";
        const std::string b = "ces\":[{\"text\":\"hi\"}]}\n\ndata: [DONE]\n\n";
        sink.write(a.data(), a.size());
        sink.write(b.data(), b.size());
        sink.done();
        return true;
      });
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~StubServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int max_in_flight() const { return max_in_flight_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> in_flight_{0}, max_in_flight_{0};
};

TEST(LoadgenTest, OpenLoopNeverExceedsTheClientPool) {
  StubServer server(40);
  std::vector<LoadRequest> reqs(12, LoadRequest{0.0, "{}"});  // all due at once
  LoadgenOptions o;
  o.url = server.url();
  o.max_connections = 3;
  size_t calls = 0;
  const auto results = run_load(o, reqs, [&](size_t done, size_t total) {
    EXPECT_EQ(total, 12u);
    EXPECT_EQ(done, ++calls);
  });
  EXPECT_EQ(calls, 12u);
  EXPECT_LE(server.max_in_flight(), 3);
  EXPECT_GE(server.max_in_flight(), 2);  // and the pool is used
  double worst_delay = 0;
  for (const LoadResult& r : results) {
    EXPECT_TRUE(r.ok);
    EXPECT_GT(r.ttft, 0);
    EXPECT_GE(r.e2e, r.ttft);
    EXPECT_GE(r.e2e, r.delay + 0.035);  // counted from the due time, waiting included
    worst_delay = std::max(worst_delay, r.delay);
  }
  EXPECT_GT(worst_delay, 0.07);  // 12 requests, 3 at a time, 40 ms each: the last wait >= 120 ms
}

TEST(LoadgenTest, ClosedLoopKeepsKClientsBusy) {
  StubServer server(20);
  std::vector<LoadRequest> reqs(8, LoadRequest{99.0, "{}"});  // due ignored in a closed loop
  LoadgenOptions o;
  o.url = server.url();
  o.clients = 2;
  const auto results = run_load(o, reqs);
  EXPECT_EQ(server.max_in_flight(), 2);
  for (const LoadResult& r : results) {
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.delay, 0);
    EXPECT_LT(r.due, 5);
  }
}

TEST(LoadgenTest, OpenLoopWaitsForArrivals) {
  StubServer server(1);
  LoadgenOptions o;
  o.url = server.url();
  const auto results = run_load(o, {{0.0, "{}"}, {0.15, "{}"}});
  EXPECT_NEAR(results[0].due, 0.0, 1e-9);
  EXPECT_NEAR(results[1].due, 0.15, 1e-9);  // latency counts from the arrival asked for
  EXPECT_LT(results[1].delay, 0.1);         // and it was sent then, not late
}

TEST(LoadgenTest, NoServerIsAFailedResultNotACrash) {
  LoadgenOptions o;
  o.url = "http://127.0.0.1:1";  // nothing listens on port 1
  const auto results = run_load(o, {{0.0, "{}"}, {0.0, "{}"}});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FALSE(results[0].ok);
  EXPECT_FALSE(results[1].ok);
  EXPECT_TRUE(scrape_metrics(o.url).empty());
}

TEST(LoadgenTest, SseSplitterJoinsEventsAcrossChunks) {
  SseSplitter s;
  std::vector<std::string> events;
  auto keep = [&](const std::string& e) { events.push_back(e); };
  s.feed("data: a\n", 8, keep);
  EXPECT_TRUE(events.empty());
  s.feed("\ndata: b\n\nda", 12, keep);
  s.feed("ta: [DONE]\n\n", 12, keep);
  EXPECT_EQ(events, (std::vector<std::string>{"data: a", "data: b", "data: [DONE]"}));
}

TEST(LoadgenTest, NearestRankPercentiles) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  const LatencySummary s = summarize(v);
  EXPECT_EQ(s.n, 100u);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
  EXPECT_DOUBLE_EQ(s.p50, 51);  // index round(0.5 * 99) = 50 (0-based) of 1..100
  EXPECT_DOUBLE_EQ(s.p95, 95);
  EXPECT_DOUBLE_EQ(s.p99, 99);
  EXPECT_EQ(summarize({}).n, 0u);
}

TEST(LoadgenTest, AzureTraceRows) {
  const std::string text =
      "TIMESTAMP,ContextTokens,GeneratedTokens\n"
      "2023-11-16 18:15:46.6805900,374,44\r\n"
      "2023-11-16 18:15:50.9951690,396,109\n"
      "2023-11-16 18:15:51.2500000,10,2\n";
  auto rows = parse_azure_trace(text, 1, 5);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].ctx, 396);
  EXPECT_EQ((*rows)[1].gen, 2);
  EXPECT_NEAR((*rows)[1].t - (*rows)[0].t, 0.2548310, 1e-6);
  EXPECT_FALSE(parse_azure_trace("a,b\n1,2\n", 0, 5).ok());
  EXPECT_FALSE(
      parse_azure_trace("TIMESTAMP,ContextTokens,GeneratedTokens\nnot,a,row\n", 0, 5).ok());
  EXPECT_FALSE(parse_azure_trace("TIMESTAMP,ContextTokens,GeneratedTokens\n", 0, 5).ok());
}

}  // namespace
}  // namespace rme
