// Status and StatusOr<T>: the one way failure crosses a boundary in plyr-core.
//
// A Status is a code (what kind of failure, which callers branch on and which maps to an HTTP
// status) and a message (for people: logs and the "message" of a JSON error). StatusOr<T> holds
// either a T or a non-OK Status. Neither throws; reading the value of a failed StatusOr is a
// programming error (asserted).
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace plyr {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong (400)
  kNotFound,            // 404
  kAlreadyExists,       // 409
  kFailedPrecondition,  // the state does not allow it (409)
  kResourceExhausted,   // a limit or a full queue or disk (413, 429, 507)
  kCancelled,           // someone asked for it to stop
  kDeadlineExceeded,    // a time limit passed
  kUnavailable,         // a peer could not be reached; retrying may help (502, 503)
  kUnimplemented,       // a format or feature we do not handle (415)
  kDataLoss,            // stored or received bytes are corrupt
  kInternal,            // a bug or an unexpected library failure (500)
};

// "InvalidArgument", "NotFound", ...: the code's name, as it appears in logs and JSON errors.
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: no job with this id" (or "OK").
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return {}; }

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  StatusOr(Status status) : state_(std::in_place_index<1>, std::move(status)) {  // NOLINT
    assert(!std::get<1>(state_).ok() && "a StatusOr needs a value or a failure");
  }
  StatusOr(StatusCode code, std::string message) : StatusOr(Status(code, std::move(message))) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<1>(state_); }

  T& value() & {
    assert(ok());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace plyr
