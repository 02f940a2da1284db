// HttpClient: one-shot HTTP/1.1 requests over plain TCP or TLS (Beast over OpenSSL 3).
//
// Used by one service to call another's HTTP API: GET JSON, PUT or POST a JSON body, PUT a large
// file. Each call opens its own connection, sends one request (with `Connection: close`), reads
// one response and closes. TLS verifies the peer's certificate chain against the system store
// and its host name (SNI is sent). Every call has a total deadline covering resolve, connect,
// handshake, the request (a file body included, however slowly the peer takes it) and the
// response, and a cap on the response body. Nothing throws; failures come back as error codes.
//
// Thread-safe: the TLS context is shared read-only; each call has its own connection. A call's
// I/O completes on the `executor` passed in, which must be the one the calling coroutine runs on
// (or a strand it is confined to).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/result.hpp>
#include <boost/url/url_view.hpp>

#include "common/status.h"
#include "common/net.h"

namespace boost::asio::ssl {
class context;
}

namespace plyr {

struct HttpClientRequest {
  http::verb method = http::verb::get;
  std::string url;  // http:// or https://; the fragment is not sent
  // Extra fields (Authorization, Content-Type, ...); they replace the defaults (User-Agent,
  // Connection) of the same name. Framing is the client's: Content-Length and Transfer-Encoding
  // are refused.
  std::vector<std::pair<std::string, std::string>> headers;
  // Sent when body_file is empty, with Content-Length when non-empty (and 0 on an empty POST,
  // PUT or PATCH).
  std::string body;
  // When set, the body is this regular file, streamed from disk in chunks with Content-Length =
  // its size at the start of the call; it is never held whole in memory. It is opened before any
  // network I/O, so a bad path costs no connection.
  std::filesystem::path body_file;
  // A slice of body_file: from this offset (past the end: InvalidArgument), this many bytes (0:
  // to the end; fewer when the file ends first).
  std::uint64_t body_file_offset = 0;
  std::uint64_t body_file_length = 0;
  // Total deadline: resolve, connect, TLS, request, response. milliseconds::max() means none.
  std::chrono::milliseconds timeout{30'000};
  std::size_t body_limit = 1 << 20;  // cap on the response body
  // When set, a 2xx response's body is written to this file (created or truncated, 0600) as it
  // arrives, never held in memory, and `body` stays empty; other answers land in `body` as usual.
  std::filesystem::path response_file;
  // Cap on a body written to response_file, when it differs from body_limit (0: body_limit).
  std::uint64_t response_file_limit = 0;
};

struct HttpClientResponse {
  unsigned status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // as received (names as the server sent them)

  // The value of the first field named `name` (compared case-insensitively), or empty if absent.
  // The view points into `headers` and lives as long as this response is not modified.
  std::string_view Header(std::string_view name) const;
};

// A response whose body is read as the caller takes it (HttpClient::Open): the status and header
// fields are in; the connection stays open until the body ends or this is destroyed (which
// closes it, so abandoning a body part-way is fine).
class HttpResponseStream {
 public:
  // Status and header fields; `body` stays empty.
  const HttpClientResponse& head() const { return head_; }
  // Reads the next bytes of the body into `into` (up to its size); 0 once the body has ended.
  // Each read must make progress within the request's timeout (DeadlineExceeded otherwise);
  // a peer that closes before the announced length is Unavailable.
  asio::awaitable<StatusOr<std::size_t>> Read(std::span<char> into);
  // True once the whole body has been read.
  bool done() const;

  // The connection behind it (internal).
  class Body {
   public:
    virtual ~Body() = default;
    virtual asio::awaitable<boost::system::result<std::size_t>> Read(std::span<char> into,
                                                                     std::chrono::milliseconds idle) = 0;
    virtual bool done() const = 0;
  };
  HttpResponseStream(HttpClientResponse head, std::unique_ptr<Body> body, std::chrono::milliseconds idle_timeout);
  ~HttpResponseStream();
  HttpResponseStream(const HttpResponseStream&) = delete;
  HttpResponseStream& operator=(const HttpResponseStream&) = delete;

 private:
  HttpClientResponse head_;
  std::unique_ptr<Body> body_;
  std::chrono::milliseconds idle_timeout_;
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `request` and reads the whole response. Any HTTP status is a success; the caller
  // reads `status`. `request` must stay alive until the call completes. Failures (the message
  // says what happened, in the words of the layer that failed):
  //   - InvalidArgument: the URL is not http(s) with a host, the method is unknown, a header
  //     name is not a token, a value holds a control character other than tab (CR, LF, ...) or
  //     exceeds 8 KiB, a framing header was given, or body_file is not a regular file;
  //   - NotFound: body_file does not exist; Internal: it cannot be read, or shrank during the
  //     upload (fewer bytes than announced);
  //   - DeadlineExceeded: the deadline passed;
  //   - ResourceExhausted: the response body exceeds `body_limit`, or its header 16 KiB;
  //   - Unavailable: the peer cannot be resolved, reached or understood (network, TLS, HTTP).
  // A server that answers before taking the whole body (413, 401) and closes makes the upload
  // fail; if its answer can still be read, that answer is returned instead of the write error.
  asio::awaitable<StatusOr<HttpClientResponse>> Send(asio::any_io_executor executor,
                                                     const HttpClientRequest& request);

  // Sends `request` and reads the response's header only; the body is then read through the
  // stream as the caller wants it, never held here (a proxy's upstream). `request.timeout`
  // covers everything up to the header and then each read; `body_limit` does not apply and
  // `response_file` must be empty (InvalidArgument). Failures as for Send.
  asio::awaitable<StatusOr<std::unique_ptr<HttpResponseStream>>> Open(asio::any_io_executor executor,
                                                                      const HttpClientRequest& request);

  // GETs `url` with `Accept: application/json`: Send() with a GET request. The string `url`
  // views must stay alive until the call completes.
  asio::awaitable<StatusOr<HttpClientResponse>> Get(asio::any_io_executor executor, boost::urls::url_view url,
                                                    std::chrono::milliseconds timeout,
                                                    std::size_t body_limit = 64 * 1024);

 private:
  // Send, with the failure as the error code of the layer that failed.
  asio::awaitable<boost::system::result<HttpClientResponse>> SendForCode(asio::any_io_executor executor,
                                                                          const HttpClientRequest& request);
  asio::awaitable<boost::system::result<std::unique_ptr<HttpResponseStream>>> OpenForCode(
      asio::any_io_executor executor, const HttpClientRequest& request);
  std::unique_ptr<asio::ssl::context> tls_;
};

}  // namespace plyr
