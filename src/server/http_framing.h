// server: strict HTTP/1.1 request framing (RFC 9112) for the front: where a request ends,
// decided once, before cpp-httplib or anything behind a proxy can read it differently.
#pragma once

#include <cstddef>
#include <string>

namespace rme {

// What the bytes received so far on a connection hold.
struct Framing {
  enum class Kind {
    kWaiting,   // not a whole request yet
    kComplete,  // buf now starts with one whole request in Content-Length form
    kReject,    // unrecoverable framing: answer `status` and close the connection
  };
  Kind kind = Kind::kWaiting;
  int status = 0;              // kReject: 400, 413, 431 or 501
  std::string message;         // kReject: why, for the client
  bool send_continue = false;  // the client waits for "100 Continue" before its body
  size_t need = 0;             // kWaiting: the whole request's bytes, when its length is known
};

// Frames the request at the start of `buf` (bytes received, maybe more than one request).
// Refuses what a proxy and rme could frame differently (request smuggling): two different
// Content-Length values, Content-Length with Transfer-Encoding, codings other than chunked,
// a length that is not plain digits, whitespace before a header's colon, folded headers,
// malformed or oversized chunk sizes. A whole chunked request is rewritten in place to its
// Content-Length form (trailers dropped), so what follows never sees chunked framing; the
// declared form type is rewritten to JSON (every route reads JSON). `max_body` bounds the body
// (413), 64 KiB the head (431). Pure function of its input; no I/O.
Framing frame_request(std::string& buf, size_t max_body);

// A whole HTTP/1.1 response that closes the connection, with an OpenAI-style JSON error body.
std::string framing_error_response(int status, const std::string& message);

}  // namespace rme
