// core: Status and Result<T>, the error type for every expected failure (bad file, bad request).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "core/check.h"

namespace rme {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller passed something malformed
  kNotFound,         // a file, tensor or key is missing
  kIoError,          // the OS refused a read, write or map
  kCorrupt,          // a file's bytes contradict its own format
  kUnsupported,      // well-formed but not something rme handles
  kResourceExhausted,
  kInternal,  // an invariant of rme itself broke (a bug, reported rather than aborting)
};

const char* status_code_name(StatusCode code);

// A success or an error code with a human-readable message that carries context
// ("model.gguf: tensor 'blk.0.attn_q.weight' shape [64, 64] != [64, 32]").
// Value type, cheap to move; thread-compatible.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

  // Returns a copy whose message is "prefix: message" (adds context on the way up).
  Status with_context(const std::string& prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status not_found(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status io_error(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
inline Status corrupt(std::string m) { return Status(StatusCode::kCorrupt, std::move(m)); }
inline Status unsupported(std::string m) { return Status(StatusCode::kUnsupported, std::move(m)); }
inline Status resource_exhausted(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status internal_error(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

// Either a T or a non-ok Status. Accessing value() of an error is a bug (CHECK).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    RME_CHECK(!std::get<Status>(v_).ok()) << "Result constructed from an ok Status";
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & {
    RME_CHECK(ok()) << status().to_string();
    return std::get<T>(v_);
  }
  const T& value() const& {
    RME_CHECK(ok()) << status().to_string();
    return std::get<T>(v_);
  }
  T&& value() && {
    RME_CHECK(ok()) << status().to_string();
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace rme

#define RME_CONCAT_INNER(a, b) a##b
#define RME_CONCAT(a, b) RME_CONCAT_INNER(a, b)

#define RME_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::rme::Status rme_status_ = (expr);        \
    if (!rme_status_.ok()) return rme_status_; \
  } while (0)

#define RME_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#define RME_ASSIGN_OR_RETURN(lhs, expr) \
  RME_ASSIGN_OR_RETURN_IMPL(RME_CONCAT(rme_result_, __LINE__), lhs, expr)
