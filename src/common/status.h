// Status and Result<T>: how every fallible operation in Turbine reports failure.
// No exception crosses a component boundary; a Status carries a code and a one-line message that
// names what was wrong (the file, the key, the tensor, the field).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace turbine {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // bad input from a caller or a file (malformed, out of range)
  kNotFound,           // a named thing does not exist (file, tensor, key, model)
  kAlreadyExists,
  kResourceExhausted,  // no room right now (queue full, no free KV blocks): a normal outcome
  kFailedPrecondition,
  kOutOfRange,
  kUnimplemented,      // valid input that this build does not support (an architecture, a dtype)
  kUnavailable,        // a peer or service cannot be reached; retrying may help
  kDeadlineExceeded,
  kCancelled,
  kDataLoss,           // truncated or corrupt data
  kIoError,
  kInternal,           // a bug: an invariant did not hold
};

std::string_view statusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }

  bool isOk() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message" (or "OK").
  std::string toString() const;

  // Returns a copy whose message is "<prefix>: <message>".
  Status withPrefix(std::string_view prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status resourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status failedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status outOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status dataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status ioError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status internalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).isOk() && "Result constructed from an OK status");
  }

  bool isOk() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return isOk(); }

  const Status& status() const {
    static const Status kOkStatus;
    return isOk() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace turbine

#define TURBINE_CONCAT_INNER_(a, b) a##b
#define TURBINE_CONCAT_(a, b) TURBINE_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function if `expr` (a Status) is not OK.
#define TURBINE_RETURN_IF_ERROR(expr)            \
  do {                                           \
    ::turbine::Status _st = (expr);              \
    if (!_st.isOk()) return _st;                 \
  } while (0)

// `lhs = value of expr` (a Result<T>), or returns its Status from the enclosing function.
#define TURBINE_ASSIGN_OR_RETURN(lhs, expr) \
  TURBINE_ASSIGN_OR_RETURN_IMPL_(TURBINE_CONCAT_(_res_, __LINE__), lhs, expr)
#define TURBINE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.isOk()) return tmp.status();                \
  lhs = std::move(tmp).value()
