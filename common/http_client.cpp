#include "common/http_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/version.hpp>

namespace plyr {

using tcp = asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

HttpClient::HttpClient() : tls_(std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client)) {
  tls_->set_default_verify_paths();
  tls_->set_verify_mode(asio::ssl::verify_peer);
}

HttpClient::~HttpClient() = default;

namespace {

// Sends the request and reads the response on an established stream (plain or TLS).
template <typename Stream>
asio::awaitable<boost::system::result<HttpClientResponse>> Exchange(Stream& stream,
                                                                     const http::request<http::empty_body>& req,
                                                                     std::size_t body_limit) {
  auto [wec, wn] = co_await http::async_write(stream, req, kUseTuple);
  if (wec) co_return wec;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kUseTuple);
  if (rec == http::error::body_limit) co_return boost::system::errc::make_error_code(boost::system::errc::message_size);
  if (rec) co_return rec;
  auto res = parser.release();
  co_return HttpClientResponse{res.result_int(), std::move(res.body())};
}

}  // namespace

asio::awaitable<boost::system::result<HttpClientResponse>> HttpClient::Get(asio::any_io_executor executor,
                                                                            boost::urls::url_view url,
                                                                            std::chrono::milliseconds timeout,
                                                                            std::size_t body_limit) {
  const bool tls = url.scheme() == "https";
  if ((!tls && url.scheme() != "http") || url.host().empty()) {
    co_return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  }
  const std::string host = url.host_address();
  const std::string port = url.has_port() ? std::string(url.port()) : (tls ? "443" : "80");
  const auto deadline = std::chrono::steady_clock::now() + timeout;

  beast::tcp_stream stream(executor);
  stream.expires_at(deadline);
  tcp::resolver resolver(executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(host, port, kUseTuple);
  if (rec) co_return rec;
  if (std::chrono::steady_clock::now() >= deadline) co_return boost::system::error_code(asio::error::timed_out);
  auto [cec, ep] = co_await stream.async_connect(endpoints, kUseTuple);
  if (cec) co_return cec == beast::error::timeout ? boost::system::error_code(asio::error::timed_out) : cec;

  http::request<http::empty_body> req(http::verb::get, url.encoded_target(), 11);
  req.set(http::field::host, url.encoded_host_and_port());
  req.set(http::field::user_agent, "plyr-core");
  req.set(http::field::accept, "application/json");

  boost::system::result<HttpClientResponse> result;
  if (tls) {
    beast::ssl_stream<beast::tcp_stream> tls_stream(std::move(stream), *tls_);
    if (!SSL_set_tlsext_host_name(tls_stream.native_handle(), host.c_str())) {
      co_return boost::system::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
    }
    tls_stream.set_verify_callback(asio::ssl::host_name_verification(host));
    auto [hec] = co_await tls_stream.async_handshake(asio::ssl::stream_base::client, kUseTuple);
    if (hec) co_return hec == beast::error::timeout ? boost::system::error_code(asio::error::timed_out) : hec;
    result = co_await Exchange(tls_stream, req, body_limit);
  } else {
    result = co_await Exchange(stream, req, body_limit);
  }
  if (!result && result.error() == beast::error::timeout) co_return boost::system::error_code(asio::error::timed_out);
  co_return result;
}

}  // namespace plyr

