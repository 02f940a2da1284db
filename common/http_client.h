// HttpClient: one-shot HTTP/1.1 GET requests over plain TCP or TLS (Beast over OpenSSL 3).
//
// Used to call other services' public HTTP APIs. TLS verifies the peer's certificate chain
// against the system store and its host name (SNI is sent). Every call has a total deadline
// covering resolve, connect, handshake, request and response, and a cap on the body size.
// Thread-safe: the TLS context is shared read-only; each call has its own connection.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <boost/url/url_view.hpp>

#include "common/net.h"

namespace boost::asio::ssl {
class context;
}

namespace plyr {

struct HttpClientResponse {
  unsigned status = 0;
  std::string body;
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();

  // GETs `url` (scheme http or https). Errors: asio::error::timed_out past `timeout`,
  // errc::invalid_argument for an unsupported URL, errc::message_size when the body exceeds
  // `body_limit`, and the underlying network or TLS error otherwise.
  asio::awaitable<boost::system::result<HttpClientResponse>> Get(asio::any_io_executor executor,
                                                                  boost::urls::url_view url,
                                                                  std::chrono::milliseconds timeout,
                                                                  std::size_t body_limit = 64 * 1024);

 private:
  std::unique_ptr<asio::ssl::context> tls_;
};

}  // namespace plyr
