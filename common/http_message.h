// Request and Response as handlers see them.
//
// A handler is `asio::awaitable<Response>(Request&)`. The Request holds the parsed header, the
// path parameters the router matched and a way to pull the body, which is never read until the
// handler asks (so a refused upload costs nothing). The Response is either a small in-memory
// body or a list of segments, some of which are slices of an open file; the server sends file
// slices without holding them in memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>
#include <boost/url/url_view.hpp>

#include "common/file_util.h"
#include "common/net.h"
#include "common/status.h"

namespace plyr {

using RequestHeader = http::request_header<>;
using ResponseHeader = http::response_header<>;

// Why a body read failed; handlers answer with the matching status (see ErrorResponseFor).
enum class BodyError {
  kTooLarge = 1,  // 413: more bytes than the limit the handler passed
  kTimeout,       // 408: the client stopped sending
  kBadFraming,    // 400: chunked encoding or Content-Length was malformed
  kConnection,    // the client went away; there is no one to answer
};

// Implemented by the server session: pulls the request body on demand.
class BodySource {
 public:
  virtual ~BodySource() = default;
  // Reads up to `buffer.size()` body bytes. Returns 0 at the end of the body.
  virtual asio::awaitable<std::variant<std::size_t, BodyError>> ReadSome(std::span<char> buffer) = 0;
};

class Request {
 public:
  Request(RequestHeader& header, boost::urls::url_view url, std::string request_id, BodySource* body)
      : header_(header), url_(url), request_id_(std::move(request_id)), body_(body) {}

  const RequestHeader& header() const { return header_; }
  http::verb method() const { return header_.method(); }
  std::string_view target() const { return header_.target(); }
  const boost::urls::url_view& url() const { return url_; }
  const std::string& request_id() const { return request_id_; }

  // A header field, or empty.
  std::string_view Field(std::string_view name) const;
  // A header field by enum, or empty.
  std::string_view Field(http::field name) const;
  // A decoded query parameter (first occurrence), if present.
  std::optional<std::string> Query(std::string_view name) const;
  // A cookie value from the Cookie header, if present.
  std::optional<std::string_view> Cookie(std::string_view name) const;
  // The declared Content-Length, if present and a valid number.
  std::optional<std::uint64_t> ContentLength() const;
  // The bearer credential of `Authorization: Bearer <x>`, if present.
  std::optional<std::string_view> BearerToken() const;

  // Path parameters filled in by the router, decoded ("{file_id}" -> value).
  const std::string* Param(std::string_view name) const;
  std::vector<std::pair<std::string, std::string>>& params() { return params_; }

  // Reads some of the body (see BodySource::ReadSome). Handlers that never call it leave the
  // body unread; the server then closes the connection after the response.
  asio::awaitable<std::variant<std::size_t, BodyError>> ReadSome(std::span<char> buffer) {
    return body_->ReadSome(buffer);
  }
  // Reads the whole body into a string, refusing more than `limit` bytes.
  asio::awaitable<std::variant<std::string, BodyError>> ReadAll(std::size_t limit);

 private:
  RequestHeader& header_;
  boost::urls::url_view url_;
  std::string request_id_;
  BodySource* body_;
  std::vector<std::pair<std::string, std::string>> params_;
};

// A slice of an open file, sent as part of a response body.
struct FileSlice {
  std::shared_ptr<const UniqueFd> file;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};
// A slice of a body that comes from elsewhere as it is sent (an object store's answer, proxied):
// the server asks `read` for the next bytes, at most the span's size, and writes each piece before
// asking again, until `length` bytes have come. An error or an early end (0) cuts the response
// off: the header already promised `length` bytes, so the connection is closed.
struct StreamSlice {
  std::uint64_t length = 0;
  std::function<asio::awaitable<StatusOr<std::size_t>>(std::span<char>)> read;
};
using BodySegment = std::variant<std::string, FileSlice, StreamSlice>;

struct Response {
  ResponseHeader header;
  // The body: either `body` (the common case) or, when `segments` is non-empty, the
  // concatenation of the segments. Content-Length is set by the server from whichever is used.
  std::string body;
  std::vector<BodySegment> segments;
  // Set on HEAD answers and on 304: headers (Content-Length included) but no body on the wire.
  bool omit_body = false;
  // Content-Length for an omitted body (the length a GET would have sent).
  std::optional<std::uint64_t> omitted_length;
  // Set by a handler that takes the connection over (a WebSocket upgrade): the server then sends
  // nothing itself, calls this with the socket and the request header, and closes the connection
  // when it returns. The server's deadlines stop applying; the callee keeps its own. On shutdown
  // the server cancels the socket's operations. Bytes a client sends after the upgrade request
  // without waiting for the answer are not handed over.
  std::function<asio::awaitable<void>(asio::ip::tcp::socket&, const RequestHeader&)> take_over;

  std::uint64_t BodyLength() const;
};

// {"error": error, "message": message} with the given status and Content-Type: application/json.
Response ErrorResponse(http::status status, std::string_view error, std::string_view message);
// A JSON body with the given status.
Response JsonResponse(http::status status, const json::value& body);
// The error answer for a failed body read (413, 408 or 400).
Response ErrorResponseFor(BodyError error, std::size_t limit);
// The error answer for a failed Status: {"error": <code name>, "message": <message>} with the
// status that code maps to (InvalidArgument 400, NotFound 404, AlreadyExists and
// FailedPrecondition 409, ResourceExhausted 507, Unimplemented 415, Unavailable 502,
// DeadlineExceeded 504, otherwise 500).
Response ErrorResponseFor(const Status& status);
// The answer to a write the service's own storage refused, `code` being the failure's: 507
// StorageError "<what>: the disk is full" for ResourceExhausted (a full disk, a quota, a file size
// limit; the caller may retry once space is freed), else 500 StorageError "<what>". `what` says
// what was not done; the failure's own words (paths, database messages) belong in the log.
Response StorageErrorResponse(StatusCode code, std::string_view what);

// An IMF-fixdate (RFC 9110 section 5.6.7), e.g. "Wed, 25 Nov 2026 12:05:20 GMT".
std::string FormatHttpDate(std::int64_t unix_seconds);

// Equal-time comparison for secrets (admin tokens): no early exit on the first differing byte.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace plyr
