#include "frontend/errors.h"

#include <nlohmann/json.hpp>

namespace turbine::frontend {

ApiError apiErrorFromStatus(const Status& status, std::string param, int retry_after_s) {
  ApiError e;
  e.message = status.message();
  e.param = std::move(param);
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      e.http_status = 400;
      e.type = "invalid_request_error";
      break;
    case StatusCode::kUnimplemented:
      e.http_status = 400;
      e.type = "invalid_request_error";
      e.code = "unsupported";
      break;
    case StatusCode::kNotFound:
      e.http_status = 404;
      e.type = "not_found_error";
      break;
    case StatusCode::kResourceExhausted:
      e.http_status = 429;
      e.type = "rate_limit_error";
      e.code = "server_overloaded";
      e.retry_after_s = retry_after_s > 0 ? retry_after_s : 1;
      break;
    case StatusCode::kUnavailable:
      e.http_status = 503;
      e.type = "service_unavailable_error";
      e.retry_after_s = retry_after_s > 0 ? retry_after_s : 1;
      break;
    case StatusCode::kDeadlineExceeded:
      e.http_status = 504;
      e.type = "timeout_error";
      break;
    case StatusCode::kCancelled:
      e.http_status = 499;
      e.type = "cancelled";
      break;
    default:  // kOk (a caller bug), kInternal, kIoError, kDataLoss
      e.http_status = 500;
      e.type = "server_error";
      if (e.message.empty()) e.message = "internal error";
      break;
  }
  return e;
}

ApiError badRequest(std::string message, std::string param) {
  return apiErrorFromStatus(invalidArgument(std::move(message)), std::move(param));
}

ApiError notFoundError(std::string message, std::string code) {
  ApiError e = apiErrorFromStatus(notFound(std::move(message)));
  e.code = std::move(code);
  return e;
}

ApiError unauthorizedError() {
  ApiError e;
  e.http_status = 401;
  e.type = "authentication_error";
  e.message = "missing or invalid API key: send 'Authorization: Bearer <key>'";
  e.code = "invalid_api_key";
  return e;
}

ApiError payloadTooLargeError(size_t limit_bytes) {
  ApiError e;
  e.http_status = 413;
  e.type = "invalid_request_error";
  e.message = "request body exceeds the limit of " + std::to_string(limit_bytes) + " bytes";
  e.code = "request_too_large";
  return e;
}

std::string errorBody(const ApiError& error) {
  nlohmann::ordered_json inner;
  inner["message"] = error.message;
  inner["type"] = error.type;
  inner["param"] = error.param.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(error.param);
  inner["code"] = error.code.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(error.code);
  nlohmann::ordered_json body;
  body["error"] = std::move(inner);
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string_view httpReasonPhrase(int http_status) {
  switch (http_status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

}  // namespace turbine::frontend
