#include "tests/support/test_http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cctype>

#include <sstream>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace plyr::testing {

namespace asio = boost::asio;
namespace http = boost::beast::http;

std::string HttpResult::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

HttpResult Fetch(unsigned short port, const std::string& method, const std::string& target, const Headers& headers,
                 const std::string& body, std::chrono::milliseconds timeout) {
  // Plain POSIX sockets rather than Asio: in this io_uring build an Asio socket would give the
  // calling thread a ring, and its task work can interrupt a blocking recv with EINTR.
  HttpResult result;
  RawConnection connection(port);
  if (!connection.connected()) {
    result.transport_error = "connect failed";
    return result;
  }
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty() || method == "PUT" || method == "POST") {
    req.body() = body;
    req.prepare_payload();
  }
  std::ostringstream wire;
  wire << req;
  if (!connection.Send(wire.str())) {
    result.transport_error = "send failed";
    return result;
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 30);
  parser.eager(true);
  if (method == "HEAD") parser.skip(true);
  std::string pending;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  boost::system::error_code ec;
  while (!parser.is_done()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.transport_error = "timed out";
      return result;
    }
    std::string chunk = connection.ReadSome(left);
    if (chunk.empty() && std::chrono::steady_clock::now() >= deadline) {
      result.transport_error = "timed out";
      return result;
    }
    if (chunk.empty()) {
      // Beast asserts that put_eof follows some input: a peer gone before a byte is simply closed.
      if (!parser.got_some()) {
        result.transport_error = "connection closed before the response completed";
        return result;
      }
      parser.put_eof(ec);
      if (ec || !parser.is_done()) {
        result.transport_error = "connection closed before the response completed";
        return result;
      }
      break;
    }
    pending += chunk;
    while (!pending.empty() && !parser.is_done()) {
      std::size_t used = parser.put(asio::buffer(pending), ec);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec) {
        result.transport_error = "parse: " + ec.message();
        return result;
      }
      pending.erase(0, used);
      if (used == 0) break;
    }
  }
  auto res = parser.release();
  result.transport_ok = true;
  result.status = static_cast<int>(res.result_int());
  for (const auto& field : res) result.headers[Lower(std::string(field.name_string()))] = std::string(field.value());
  result.body = std::move(res.body());
  return result;
}

int ConnectLoopback(unsigned short port, int receive_buffer) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (receive_buffer > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

RawConnection::RawConnection(unsigned short port) : fd_(ConnectLoopback(port)) {}

RawConnection::~RawConnection() { Close(); }

void RawConnection::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawConnection::Send(const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

std::string RawConnection::ReadUntilClose(std::chrono::milliseconds timeout, bool* closed, bool* reset) {
  std::string out;
  if (closed) *closed = false;
  if (reset) *reset = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  while (fd_ >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (closed) *closed = true;
      if (reset && n < 0 && errno == ECONNRESET) *reset = true;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string RawConnection::ReadSome(std::chrono::milliseconds timeout) {
  std::string out;
  pollfd p{fd_, POLLIN, 0};
  int ready = 0;
  do {
    ready = fd_ >= 0 ? ::poll(&p, 1, static_cast<int>(timeout.count())) : 0;
  } while (ready < 0 && errno == EINTR);
  if (ready > 0) {
    char buf[65536];
    ssize_t n = 0;
    do {
      n = ::recv(fd_, buf, sizeof buf, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) out.assign(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace plyr::testing
