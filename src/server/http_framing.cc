// server: strict request framing for the front (RFC 9112 sections 5, 6 and 7.1).
#include "server/http_framing.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

namespace rme {
namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxChunkLine = 1024;  // size, extensions and CRLF

std::string lower(std::string_view s) {
  std::string o(s);
  std::transform(o.begin(), o.end(), o.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return o;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Framing reject(int status, std::string message) {
  Framing f;
  f.kind = Framing::Kind::kReject;
  f.status = status;
  f.message = std::move(message);
  return f;
}

Framing waiting() { return Framing{}; }

Framing complete() {
  Framing f;
  f.kind = Framing::Kind::kComplete;
  return f;
}

// The one length every Content-Length value (headers and comma lists) agrees on, or -1.
int64_t content_length(const std::vector<std::string_view>& values, bool* conflicting) {
  int64_t length = -1;
  *conflicting = false;
  for (std::string_view v : values) {
    for (size_t at = 0; at <= v.size();) {
      const size_t comma = std::min(v.find(',', at), v.size());
      const std::string_view d = trim(v.substr(at, comma - at));
      if (d.empty() || d.size() > 18 ||
          !std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return -1;
      const int64_t n = std::stoll(std::string(d));
      if (length >= 0 && n != length) *conflicting = true;
      length = n;
      at = comma + 1;
    }
  }
  return length;
}

// Walks the chunked body starting at `at`: the decoded size and where the message ends, or a
// reject / waiting. Copies nothing, so a body arriving in many reads is not copied each time.
Framing walk_chunks(const std::string& buf, size_t at, size_t max_body, uint64_t* size,
                    size_t* end) {
  *size = 0;
  for (;;) {
    const size_t le = buf.find("\r\n", at);
    if (le == std::string::npos)
      return buf.size() - at > kMaxChunkLine ? reject(400, "chunk size line too long") : waiting();
    if (le - at > kMaxChunkLine) return reject(400, "chunk size line too long");
    std::string_view line(buf.data() + at, le - at);
    std::string_view hex = line.substr(0, std::min(line.find(';'), line.size()));
    while (!hex.empty() && (hex.back() == ' ' || hex.back() == '\t')) hex.remove_suffix(1);
    if (hex.empty() ||
        !std::all_of(hex.begin(), hex.end(), [](unsigned char c) { return std::isxdigit(c) != 0; }))
      return reject(400, "malformed chunk size");
    while (hex.size() > 1 && hex.front() == '0') hex.remove_prefix(1);
    if (hex.size() > 15) return reject(413, "request body too large (chunk size)");
    const uint64_t n = std::stoull(std::string(hex), nullptr, 16);
    if (n > max_body || *size + n > max_body) return reject(413, "request body too large");
    at = le + 2;
    if (n == 0) {  // trailer fields until an empty line; they are dropped
      for (;;) {
        const size_t te = buf.find("\r\n", at);
        if (te == std::string::npos)
          return buf.size() - at > kMaxHead ? reject(431, "trailer fields too large") : waiting();
        if (te == at) {
          *end = at + 2;
          return complete();
        }
        at = te + 2;
      }
    }
    if (buf.size() < at + n + 2) return waiting();
    if (buf.compare(at + n, 2, "\r\n") != 0) return reject(400, "chunk data not followed by CRLF");
    *size += n;
    at += n + 2;
  }
}

}  // namespace

std::string framing_error_response(int status, const std::string& message) {
  const char* reason = status == 400   ? "Bad Request"
                       : status == 413 ? "Payload Too Large"
                       : status == 431 ? "Request Header Fields Too Large"
                       : status == 501 ? "Not Implemented"
                       : status == 503 ? "Service Unavailable"
                                       : "Error";
  const nlohmann::json body = {{"error",
                                {{"message", message},
                                 {"type", status >= 500 ? "server_error" : "invalid_request_error"},
                                 {"param", nullptr},
                                 {"code", nullptr}}}};
  const std::string b = body.dump();
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
         std::to_string(b.size()) + "\r\n\r\n" + b;
}

Framing frame_request(std::string& buf, size_t max_body) {
  const size_t he = buf.find("\r\n\r\n");
  if (he == std::string::npos)
    return buf.size() > kMaxHead ? reject(431, "request head larger than 64 KiB") : waiting();
  if (he + 4 > kMaxHead) return reject(431, "request head larger than 64 KiB");
  const std::string_view head(buf.data(), he + 2);  // the request line and headers, each + CRLF
  const size_t first = head.find("\r\n");
  const bool http10 = head.substr(0, first).ends_with("HTTP/1.0");
  std::vector<std::string_view> lengths;
  int n_te = 0;
  std::string te;
  // Lines rewritten when the request is handed on: dropped (Transfer-Encoding once de-chunked,
  // Expect once answered) or replaced (a form content type, read as JSON).
  struct Span {
    size_t at = std::string::npos, len = 0;
  } te_line, expect_line, form_line;
  for (size_t at = first + 2; at < head.size();) {
    const size_t e = head.find("\r\n", at);
    const std::string_view line = head.substr(at, e - at);
    if (line.front() == ' ' || line.front() == '\t')
      return reject(400, "folded header lines (obs-fold) are not accepted");
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return reject(400, "malformed header line");
    if (line.substr(0, colon).find_first_of(" \t") != std::string::npos)
      return reject(400, "whitespace between a header name and its colon");
    const std::string name = lower(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    const Span span{at, e + 2 - at};
    if (name == "content-length") {
      lengths.push_back(value);
    } else if (name == "transfer-encoding") {
      ++n_te;
      te = lower(value);
      te_line = span;
    } else if (name == "expect" && lower(value) == "100-continue") {
      expect_line = span;
    } else if (name == "content-type" &&
               lower(value).starts_with("application/x-www-form-urlencoded")) {
      // `curl -d` declares a form, which cpp-httplib caps at 8 KB (413 for a long prompt).
      form_line = span;
    }
    at = e + 2;
  }
  const size_t body_at = he + 4;
  uint64_t body_size = 0;
  size_t end = 0;  // where the request's bytes end in buf
  bool chunked = false;
  if (n_te > 0) {
    if (!lengths.empty())
      return reject(400, "both Content-Length and Transfer-Encoding (ambiguous framing)");
    if (http10) return reject(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (n_te > 1 || te != "chunked")
      return reject(501, "transfer coding '" + te + "' is not supported (chunked only)");
    Framing f = walk_chunks(buf, body_at, max_body, &body_size, &end);
    if (f.kind == Framing::Kind::kReject) return f;
    if (f.kind == Framing::Kind::kWaiting) {
      f.send_continue = expect_line.at != std::string::npos;
      if (f.send_continue) buf.erase(expect_line.at, expect_line.len);
      return f;
    }
    chunked = true;
  } else if (!lengths.empty()) {
    bool conflicting = false;
    const int64_t n = content_length(lengths, &conflicting);
    if (n < 0) return reject(400, "Content-Length is not a plain decimal number");
    if (conflicting) return reject(400, "conflicting Content-Length values");
    if (static_cast<uint64_t>(n) > max_body) return reject(413, "request body too large");
    body_size = static_cast<uint64_t>(n);
    end = body_at + body_size;
    if (buf.size() < end) {
      Framing f;
      f.need = end;
      f.send_continue = expect_line.at != std::string::npos;
      if (f.send_continue) buf.erase(expect_line.at, expect_line.len);
      return f;
    }
  } else {
    end = body_at;
  }
  if (!chunked && expect_line.at == std::string::npos && form_line.at == std::string::npos)
    return complete();
  // Rewrite: the head without the dropped lines, then the body (de-chunked) and what follows.
  std::string out;
  out.reserve(end + 64 + (buf.size() - end));
  size_t at = 0;
  std::vector<Span> spans = {te_line, expect_line, form_line};
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.at < b.at; });
  for (const Span& s : spans) {
    if (s.at == std::string::npos) continue;
    out.append(buf, at, s.at - at);
    if (s.at == form_line.at) out += "Content-Type: application/json\r\n";
    at = s.at + s.len;
  }
  out.append(buf, at, he + 2 - at);
  if (chunked) {
    out += "Content-Length: " + std::to_string(body_size) + "\r\n\r\n";
    for (size_t p = body_at;;) {  // walk_chunks validated every line
      const size_t le = buf.find("\r\n", p);
      const uint64_t n = std::stoull(buf.substr(p, le - p), nullptr, 16);
      if (n == 0) break;
      out.append(buf, le + 2, n);
      p = le + 2 + n + 2;
    }
  } else {
    out += "\r\n";
    out.append(buf, body_at, end - body_at);
  }
  out.append(buf, end, std::string::npos);
  buf = std::move(out);
  return complete();
}

}  // namespace rme
