// The one place that maps a Status to an HTTP status code and the OpenAI error object
//   {"error": {"message": ..., "type": ..., "param": ... | null, "code": ... | null}}
// Every error the frontend answers goes through here, so a client sees one consistent shape.
// Contract: nothing a client sent maps to 5xx — client mistakes are InvalidArgument / OutOfRange /
// NotFound / Unimplemented; 5xx is reserved for Internal, IoError, DataLoss, Unavailable,
// DeadlineExceeded. 429 and 503 carry a Retry-After header (seconds).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace turbine::frontend {

struct ApiError {
  int http_status = 500;
  std::string type;     // "invalid_request_error", "authentication_error", ...
  std::string message;
  std::string param;    // the offending request field; empty -> null
  std::string code;     // machine-readable code; empty -> null
  int retry_after_s = 0;  // > 0: send "Retry-After: <n>"
};

// Maps a Status (never OK) to the answer; `param` names the field when known.
ApiError apiErrorFromStatus(const Status& status, std::string param = {}, int retry_after_s = 1);

ApiError badRequest(std::string message, std::string param = {});
ApiError notFoundError(std::string message, std::string code = {});
ApiError unauthorizedError();
ApiError payloadTooLargeError(size_t limit_bytes);

// The JSON body of an error: {"error": {...}} (no trailing newline).
std::string errorBody(const ApiError& error);

std::string_view httpReasonPhrase(int http_status);

}  // namespace turbine::frontend
