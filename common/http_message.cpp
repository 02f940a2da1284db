#include "common/http_message.h"

#include <charconv>
#include <ctime>

#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <sodium.h>

#include "common/json_text.h"

namespace plyr {

std::string_view Request::Field(std::string_view name) const {
  auto it = header_.find(name);
  return it == header_.end() ? std::string_view{} : std::string_view(it->value());
}

std::string_view Request::Field(http::field name) const {
  auto it = header_.find(name);
  return it == header_.end() ? std::string_view{} : std::string_view(it->value());
}

std::optional<std::string> Request::Query(std::string_view name) const {
  auto params = url_.params();
  auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  return std::string((*it).value);
}

std::optional<std::string_view> Request::Cookie(std::string_view name) const {
  for (auto it = header_.find(http::field::cookie); it != header_.end() && it->name() == http::field::cookie;
       ++it) {
    std::string_view rest = it->value();
    while (!rest.empty()) {
      auto semi = rest.find(';');
      std::string_view pair = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      auto eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    }
  }
  return std::nullopt;
}

std::optional<std::uint64_t> Request::ContentLength() const {
  std::string_view text = Field(http::field::content_length);
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::string_view> Request::BearerToken() const {
  std::string_view auth = Field(http::field::authorization);
  if (auth.size() < 7) return std::nullopt;
  // The scheme is case-insensitive (RFC 9110 section 11.1).
  std::string_view scheme = auth.substr(0, 7);
  if (!beast::iequals(scheme, "Bearer ")) return std::nullopt;
  std::string_view token = auth.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

const std::string* Request::Param(std::string_view name) const {
  for (const auto& [k, v] : params_) {
    if (k == name) return &v;
  }
  return nullptr;
}

asio::awaitable<std::variant<std::string, BodyError>> Request::ReadAll(std::size_t limit) {
  std::string out;
  char buf[16 * 1024];
  for (;;) {
    auto r = co_await ReadSome(buf);
    if (auto* e = std::get_if<BodyError>(&r)) co_return *e;
    std::size_t n = std::get<std::size_t>(r);
    if (n == 0) co_return out;
    if (out.size() + n > limit) co_return BodyError::kTooLarge;
    out.append(buf, n);
  }
}

std::uint64_t Response::BodyLength() const {
  if (segments.empty()) return body.size();
  std::uint64_t total = 0;
  for (const auto& s : segments) {
    if (auto* str = std::get_if<std::string>(&s)) {
      total += str->size();
    } else if (auto* file = std::get_if<FileSlice>(&s)) {
      total += file->length;
    } else {
      total += std::get<StreamSlice>(s).length;
    }
  }
  return total;
}

Response JsonResponse(http::status status, const json::value& body) {
  Response r;
  r.header.result(status);
  r.header.set(http::field::content_type, "application/json");
  r.body = ToJsonText(body);
  return r;
}

Response ErrorResponse(http::status status, std::string_view error, std::string_view message) {
  return JsonResponse(status, json::object{{"error", error}, {"message", message}});
}

Response StorageErrorResponse(StatusCode code, std::string_view what) {
  if (code == StatusCode::kResourceExhausted) {
    return ErrorResponse(http::status::insufficient_storage, "StorageError", std::string(what) + ": the disk is full");
  }
  return ErrorResponse(http::status::internal_server_error, "StorageError", what);
}

Response ErrorResponseFor(const Status& status) {
  http::status code = http::status::internal_server_error;
  switch (status.code()) {
    case StatusCode::kInvalidArgument: code = http::status::bad_request; break;
    case StatusCode::kNotFound: code = http::status::not_found; break;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition: code = http::status::conflict; break;
    case StatusCode::kResourceExhausted: code = http::status::insufficient_storage; break;
    case StatusCode::kUnimplemented: code = http::status::unsupported_media_type; break;
    case StatusCode::kUnavailable: code = http::status::bad_gateway; break;
    case StatusCode::kDeadlineExceeded: code = http::status::gateway_timeout; break;
    default: break;
  }
  return ErrorResponse(code, StatusCodeName(status.code()), status.message());
}

Response ErrorResponseFor(BodyError error, std::size_t limit) {
  switch (error) {
    case BodyError::kTooLarge:
      return ErrorResponse(http::status::payload_too_large, "PayloadTooLarge",
                           "request body exceeds the limit of " + std::to_string(limit) + " bytes");
    case BodyError::kTimeout:
      return ErrorResponse(http::status::request_timeout, "RequestTimeout", "the request body stopped arriving");
    case BodyError::kBadFraming:
    case BodyError::kConnection:
      break;
  }
  return ErrorResponse(http::status::bad_request, "BadRequest", "malformed request body");
}

std::string FormatHttpDate(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (sodium_init() < 0) return false;
  // Compare fixed-size digests so the running time does not depend on where the inputs differ
  // nor (beyond hashing) on their lengths.
  unsigned char da[crypto_generichash_BYTES], db[crypto_generichash_BYTES];
  crypto_generichash(da, sizeof da, reinterpret_cast<const unsigned char*>(a.data()), a.size(), nullptr, 0);
  crypto_generichash(db, sizeof db, reinterpret_cast<const unsigned char*>(b.data()), b.size(), nullptr, 0);
  return sodium_memcmp(da, db, sizeof da) == 0;
}

}  // namespace plyr
