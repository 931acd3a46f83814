// tests/server: frame_request, the front's strict HTTP/1.1 framing, on hand-made byte streams:
// what it accepts, how it rewrites chunked bodies, and every ambiguity it refuses.
#include <gtest/gtest.h>

#include "server/http_framing.h"

namespace rme {
namespace {

using Kind = Framing::Kind;

Framing frame(std::string& buf, size_t max_body = 4096) { return frame_request(buf, max_body); }

Framing frame(const std::string& s) {
  std::string buf = s;
  return frame_request(buf, 4096);
}

const std::string kHead = "POST /v1/completions HTTP/1.1\r\nHost: x\r\n";

TEST(FramingTest, ContentLengthWaitsThenCompletesAndKeepsWhatFollows) {
  std::string buf = kHead + "Content-Length: 5\r\n\r\nab";
  Framing f = frame(buf);
  EXPECT_EQ(f.kind, Kind::kWaiting);
  EXPECT_EQ(f.need, buf.size() + 3);
  buf += "cdeGET /health HTTP/1.1\r\n\r\n";
  const std::string before = buf;
  EXPECT_EQ(frame(buf).kind, Kind::kComplete);
  EXPECT_EQ(buf, before);  // nothing to rewrite: the pipelined request stays after the body
  EXPECT_EQ(frame("GET /health HTTP/1.1\r\nHost: x\r\n\r\n").kind, Kind::kComplete);
  EXPECT_EQ(frame(kHead + "Content-Length: 5\r\ncontent-length: 5\r\n\r\nabcde").kind,
            Kind::kComplete);  // identical repeats are one length (RFC 9112 6.3)
}

TEST(FramingTest, AmbiguousLengthsAreRefused) {
  for (const std::string h :
       {"Content-Length: 2\r\nContent-Length: 40\r\n", "Content-Length: 2, 40\r\n",
        "Content-Length: +5\r\n", "Content-Length: 0x10\r\n", "Content-Length: 5 5\r\n",
        "Content-Length: \r\n", "Content-Length: 99999999999999999999999\r\n"}) {
    const Framing f = frame(kHead + h + "\r\nabcde");
    EXPECT_EQ(f.kind, Kind::kReject) << h;
    EXPECT_EQ(f.status, 400) << h;
  }
  const Framing big = frame(kHead + "Content-Length: 4097\r\n\r\n");
  EXPECT_EQ(big.kind, Kind::kReject);
  EXPECT_EQ(big.status, 413);
}

TEST(FramingTest, ContentLengthWithTransferEncodingIsRefused) {
  // The classic smuggling pair: a proxy that frames by one header and a server by the other.
  const Framing f = frame(kHead +
                          "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                          "GET /health HTTP/1.1\r\n\r\n");
  EXPECT_EQ(f.kind, Kind::kReject);
  EXPECT_EQ(f.status, 400);
  EXPECT_NE(f.message.find("Content-Length and Transfer-Encoding"), std::string::npos);
}

TEST(FramingTest, OnlyChunkedIsAcceptedAsATransferCoding) {
  for (const std::string te : {"gzip, chunked", "chunked, gzip", "identity", "xchunked"}) {
    const Framing f = frame(kHead + "Transfer-Encoding: " + te + "\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(f.kind, Kind::kReject) << te;
    EXPECT_EQ(f.status, 501) << te;
  }
  const Framing twice =
      frame(kHead + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(twice.kind, Kind::kReject);
  const Framing http10 =
      frame("POST /v1/completions HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(http10.kind, Kind::kReject);
  EXPECT_EQ(http10.status, 400);
}

TEST(FramingTest, HeaderSyntaxThatProxiesReadDifferentlyIsRefused) {
  for (const std::string h : {"Content-Length : 5\r\n", "Transfer-Encoding\t: chunked\r\n",
                              "X-A: 1\r\n folded\r\n", "no colon here\r\n", ": empty\r\n"}) {
    const Framing f = frame(kHead + h + "\r\nabcde");
    EXPECT_EQ(f.kind, Kind::kReject) << h;
    EXPECT_EQ(f.status, 400) << h;
  }
  const Framing huge = frame(kHead + "X-Big: " + std::string(70000, 'a'));
  EXPECT_EQ(huge.kind, Kind::kReject);
  EXPECT_EQ(huge.status, 431);
}

TEST(FramingTest, ChunkedBodiesBecomeContentLengthWithTrailersDropped) {
  std::string buf = kHead + "Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n";
  EXPECT_EQ(frame(buf).kind, Kind::kWaiting);
  buf += "0006\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
  ASSERT_EQ(frame(buf).kind, Kind::kComplete);
  EXPECT_EQ(buf, kHead + "Content-Length: 11\r\n\r\nhello worldNEXT");
  std::string empty = kHead + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  ASSERT_EQ(frame(empty).kind, Kind::kComplete);
  EXPECT_EQ(empty, kHead + "Content-Length: 0\r\n\r\n");
}

TEST(FramingTest, MalformedAndOversizedChunksAreRefused) {
  const std::string te = kHead + "Transfer-Encoding: chunked\r\n\r\n";
  struct Case {
    std::string body;
    int status;
  };
  for (const Case& c :
       std::vector<Case>{{"ffffffffffffffffffff\r\n", 413},  // 2^80: would overflow a 64-bit size
                         {"10000000000000000\r\n", 413},     // 2^64 exactly
                         {"1001\r\n", 413},                  // 4097 > the 4096-byte body limit
                         {"800\r\n" + std::string(2048, 'a') + "\r\n801\r\n", 413},  // the sum too
                         {"zz\r\nab\r\n0\r\n\r\n", 400},
                         {"-1\r\nab\r\n0\r\n\r\n", 400},
                         {"\r\nab\r\n0\r\n\r\n", 400},
                         {"2\r\nabc\r\n0\r\n\r\n", 400},  // data longer than its size
                         {std::string(2000, '0') + "1", 400}}) {
    const Framing f = frame(te + c.body);
    EXPECT_EQ(f.kind, Kind::kReject) << c.body.substr(0, 40);
    EXPECT_EQ(f.status, c.status) << c.body.substr(0, 40);
  }
}

TEST(FramingTest, FormBodiesAreReadAsJsonAndContinueIsAnsweredOnce) {
  std::string form = kHead +
                     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 2\r\n\r\n"
                     "{}";
  ASSERT_EQ(frame(form).kind, Kind::kComplete);
  EXPECT_EQ(form, kHead + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  std::string ex = kHead + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n";
  Framing f = frame(ex);
  EXPECT_EQ(f.kind, Kind::kWaiting);
  EXPECT_TRUE(f.send_continue);
  EXPECT_EQ(ex.find("Expect"), std::string::npos);  // httplib must not send a second one
  ex += "{}";
  f = frame(ex);
  EXPECT_EQ(f.kind, Kind::kComplete);
  EXPECT_FALSE(f.send_continue);
}

TEST(FramingTest, ErrorResponsesCloseAndCarryJson) {
  const std::string r = framing_error_response(413, "request body too large");
  EXPECT_EQ(r.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0), 0u);
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
  const size_t body = r.find("\r\n\r\n") + 4;
  EXPECT_NE(r.find("Content-Length: " + std::to_string(r.size() - body)), std::string::npos);
  EXPECT_NE(r.find("\"message\":\"request body too large\""), std::string::npos);
}

}  // namespace
}  // namespace rme
