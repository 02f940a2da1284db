#include "common/http_server.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <ctime>
#include <random>
#include <sstream>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#if defined(BOOST_ASIO_HAS_FILE)
#include <boost/asio/random_access_file.hpp>
#include <boost/asio/read_at.hpp>
#endif
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/url/parse.hpp>

#include "common/log.h"

namespace plyr {

using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// One accepted connection. Owned by its session coroutine (and borrowed by the watchdog); all
// members are touched only from the connection's executor.
struct HttpServer::Connection {
  explicit Connection(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}

  tcp::socket socket;
  asio::steady_timer timer;
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point armed_for = Clock::time_point::max();  // what the watchdog's timer waits for
  bool timed_out = false;
  bool idle = true;
  bool taken_over = false;  // a handler owns the socket now (WebSocket)
  std::string peer;
  asio::ip::address peer_address;
  bool peer_is_trusted_proxy = false;  // options_.trusted_proxies holds peer_address
};

namespace {

// ---------------------------------------------------------------------------------------------
// Small helpers

std::string PeerAddress(const tcp::socket& socket) {
  sys::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  return ec ? std::string("-") : ep.address().to_string();
}

// Request ids: the client's X-Request-Id when it is short and plain, otherwise our own.
std::string MakeRequestId(std::string_view from_client) {
  if (!from_client.empty() && from_client.size() <= 64) {
    bool plain = true;
    for (char c : from_client) {
      plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
    }
    if (plain) return std::string(from_client);
  }
  thread_local std::uint64_t prefix = std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32);
  thread_local std::uint64_t counter = 0;
  return fmt::format("{:08x}{:08x}", static_cast<std::uint32_t>(prefix ^ (prefix >> 32)),
                     static_cast<std::uint32_t>(++counter));
}

// The HTTP Date header, formatted once per second per thread.
const std::string& HttpDate() {
  thread_local std::time_t cached_second = 0;
  thread_local std::string cached;
  std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    cached_second = now;
    cached = FormatHttpDate(now);
  }
  return cached;
}

// The target as it may appear in a log: values of credential-bearing query parameters redacted.
std::string RedactedTarget(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);
  std::string out(target.substr(0, q + 1));
  std::string_view query = target.substr(q + 1);
  bool first = true;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (!first) out += '&';
    first = false;
    if (eq != std::string_view::npos && (key == "ticket" || key == "token" || key == "access_token")) {
      out += key;
      out += "=REDACTED";
    } else {
      out += pair;
    }
  }
  return out;
}

// Serialises a response header (status line and fields) into `out`, using Beast's serializer.
void SerializeHeader(ResponseHeader&& header, std::string& out) {
  http::response<http::empty_body> message(std::move(header));
  http::response_serializer<http::empty_body> serializer(message);
  serializer.split(true);
  sys::error_code ec;
  out.clear();
  while (!serializer.is_header_done()) {
    serializer.next(ec, [&](sys::error_code&, const auto& buffers) {
      for (auto b : beast::buffers_range_ref(buffers)) out.append(static_cast<const char*>(b.data()), b.size());
      serializer.consume(beast::buffer_bytes(buffers));
    });
    if (ec) break;
  }
}

// Cancels the connection's pending I/O when its deadline passes. The deadline moves with each I/O
// step; moving it later costs nothing (the timer re-arms only when it fires early), moving it
// earlier wakes the watchdog (see SetDeadline).
asio::awaitable<void> Watchdog(std::shared_ptr<HttpServer::Connection> c) {
  while (c->socket.is_open()) {
    c->armed_for = c->deadline;
    c->timer.expires_at(c->deadline);
    co_await c->timer.async_wait(kUseTuple);
    if (!c->socket.is_open()) break;
    if (Clock::now() >= c->deadline) {
      c->timed_out = true;
      c->deadline = Clock::time_point::max();
      sys::error_code ignored;
      c->socket.cancel(ignored);
    }
  }
}

void SetDeadline(HttpServer::Connection& c, Clock::time_point deadline) {
  c.deadline = deadline;
  if (deadline < c.armed_for) c.timer.cancel();
}

// The deadline of the next step of a transfer (a request body, a response) that began at `start`
// and has moved `done` bytes: `io_timeout` from now, or sooner, when at the step's end the
// transfer would average less than the minimum rate (after the grace period). A transfer already
// behind gets a deadline of now: its step is cancelled at once.
Clock::time_point StepDeadline(const HttpServerOptions& options, Clock::time_point start, std::uint64_t done) {
  const auto now = Clock::now();
  auto deadline = now + options.io_timeout;
  if (options.min_rate_bytes_per_s > 0) {
    const auto earned = std::chrono::milliseconds(done / options.min_rate_bytes_per_s * 1000 +
                                                  done % options.min_rate_bytes_per_s * 1000 / options.min_rate_bytes_per_s);
    deadline = std::min(deadline, std::max(now, start + options.min_rate_grace + earned));
  }
  return deadline;
}

// ---------------------------------------------------------------------------------------------
// The body of the current request, pulled on demand by the handler.

class ParserBodySource final : public BodySource {
 public:
  ParserBodySource(HttpServer::Connection& c, beast::flat_buffer& buffer,
                   http::request_parser<http::buffer_body>& parser, const HttpServerOptions& options)
      : connection_(c), buffer_(buffer), parser_(parser), options_(options) {}

  asio::awaitable<std::variant<std::size_t, BodyError>> ReadSome(std::span<char> out) override;
  bool done() const { return parser_.is_done(); }

 private:
  HttpServer::Connection& connection_;
  beast::flat_buffer& buffer_;
  http::request_parser<http::buffer_body>& parser_;
  const HttpServerOptions& options_;
  bool continue_sent_ = false;
  Clock::time_point started_{};  // the first read: the body's rate is counted from there
  std::uint64_t received_ = 0;
};

asio::awaitable<std::variant<std::size_t, BodyError>> ParserBodySource::ReadSome(std::span<char> out) {
  if (out.empty()) co_return std::size_t{0};
  // A client that sent "Expect: 100-continue" waits for our go-ahead before sending the body.
  if (!continue_sent_) {
    continue_sent_ = true;
    started_ = Clock::now();
    auto expect = parser_.get().find(http::field::expect);
    if (expect != parser_.get().end() && beast::iequals(expect->value(), "100-continue") && !parser_.is_done()) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      SetDeadline(connection_, Clock::now() + options_.io_timeout);
      auto [ec, n] = co_await asio::async_write(connection_.socket, asio::buffer(kContinue), kUseTuple);
      if (ec) co_return connection_.timed_out ? BodyError::kTimeout : BodyError::kConnection;
    }
  }
  while (!parser_.is_done()) {
    auto& body = parser_.get().body();
    body.data = out.data();
    body.size = out.size();
    SetDeadline(connection_, StepDeadline(options_, started_, received_));
    auto [ec, n] = co_await http::async_read_some(connection_.socket, buffer_, parser_, kUseTuple);
    std::size_t got = out.size() - body.size;
    received_ += got;
    if (ec && ec != http::error::need_buffer) {
      if (connection_.timed_out) co_return BodyError::kTimeout;
      if (ec.category() == http::make_error_code(http::error::body_limit).category()) co_return BodyError::kBadFraming;
      co_return BodyError::kConnection;
    }
    if (got > 0) co_return got;
  }
  co_return std::size_t{0};
}


// Closing a socket with request bytes unread makes the kernel send a reset, which can destroy the
// answer still on its way to the client (RFC 9112, section 9.6): half-close, then read and drop
// what the client still sends until it closes, for at most `most_time` and `most_bytes`.
asio::awaitable<void> LingeringClose(tcp::socket& socket, std::chrono::milliseconds most_time,
                                     std::size_t most_bytes) {
  sys::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  asio::steady_timer timer(socket.get_executor(), most_time);
  auto drain = [&]() -> asio::awaitable<void> {
    char sink[16384];
    std::size_t total = 0;
    while (total < most_bytes) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(sink), kUseTuple);
      if (ec) break;
      total += n;
    }
  };
  using namespace asio::experimental::awaitable_operators;
  co_await (drain() || timer.async_wait(kUseTuple));
  socket.close(ignored);
}

}  // namespace

// -----------------------------------------------------------------------------------------------
// Listener

HttpServer::HttpServer(Runtime& runtime, Router router, HttpServerOptions options, MetricsRegistry& metrics)
    : runtime_(runtime),
      router_(std::move(router)),
      options_(std::move(options)),
      metrics_(metrics),
      http_metrics_(metrics, options_.service) {}

HttpServer::~HttpServer() = default;

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(Runtime& runtime, const tcp::endpoint& endpoint,
                                                         Router router, HttpServerOptions options,
                                                         MetricsRegistry& metrics) {
  const std::string service = options.service;
  router.Add(http::verb::get, "/health", [service](Request&) -> asio::awaitable<Response> {
    co_return JsonResponse(http::status::ok, json::object{{"status", "ok"}, {"service", service}});
  });
  router.Add(http::verb::get, "/metrics", [&metrics](Request&) -> asio::awaitable<Response> {
    Response r;
    r.header.result(http::status::ok);
    r.header.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    r.body = metrics.Render();
    co_return r;
  });

  // At debug level, every route: what operators and the auth matrix test read to see the API.
  for (const auto& [method, pattern] : router.Routes()) {
    spdlog::debug("route service={} method={} pattern={}", service, std::string_view(http::to_string(method)), pattern);
  }

  std::unique_ptr<HttpServer> server(new HttpServer(runtime, std::move(router), std::move(options), metrics));
  tcp::endpoint bind_to = endpoint;
  for (const auto& ctx : runtime.contexts()) {
    auto acceptor = std::make_unique<tcp::acceptor>(*ctx);
    sys::error_code ec;
    acceptor->open(bind_to.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && runtime.contexts().size() > 1) {
      int one = 1;
      if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        ec = LastError();
      }
    }
    if (!ec) acceptor->bind(bind_to, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::ostringstream address;
      address << bind_to;
      return Status(StatusCode::kUnavailable, "cannot listen on " + address.str() + ": " + ec.message());
    }
    // Every further acceptor joins the port the first one got (port 0 resolves once).
    bind_to.port(acceptor->local_endpoint().port());
    server->acceptors_.push_back(std::move(acceptor));
  }
  server->port_ = bind_to.port();
  return server;
}

void HttpServer::Start() {
  for (auto& acceptor : acceptors_) {
    accept_loops_.fetch_add(1);
    asio::co_spawn(acceptor->get_executor(), AcceptLoop(*acceptor), asio::detached);
  }
}

void HttpServer::BeginShutdown() {
  if (draining_.exchange(true)) return;
  for (auto& acceptor : acceptors_) {
    asio::post(acceptor->get_executor(), [a = acceptor.get()] {
      sys::error_code ignored;
      a->close(ignored);
    });
  }
  PostToEachConnection([](Connection& c) {
    if (c.idle || c.taken_over) {
      sys::error_code ignored;
      c.socket.cancel(ignored);
    }
  });
}

void HttpServer::CloseAll() {
  PostToEachConnection([](Connection& c) {
    sys::error_code ignored;
    c.socket.close(ignored);
  });
}

void HttpServer::PostToEachConnection(std::function<void(Connection&)> action) {
  std::lock_guard lock(connections_mutex_);
  for (Connection* c : connections_) {
    // The connection may be gone by the time this runs on its executor; the session keeps it
    // registered until it ends, and ends only on that same executor, so the check is safe.
    asio::post(c->socket.get_executor(), [this, c, action] {
      std::lock_guard inner(connections_mutex_);
      if (connections_.contains(c)) action(*c);
    });
  }
}

void HttpServer::Register(Connection* c) {
  std::lock_guard lock(connections_mutex_);
  connections_.insert(c);
}

void HttpServer::Unregister(Connection* c) {
  std::lock_guard lock(connections_mutex_);
  connections_.erase(c);
}

asio::awaitable<void> HttpServer::AcceptLoop(tcp::acceptor& acceptor) {
  struct Ended {
    std::atomic<std::size_t>& loops;
    ~Ended() { loops.fetch_sub(1); }
  } ended{accept_loops_};
  auto& ctx = static_cast<asio::io_context&>(acceptor.get_executor().context());
  const bool shared = runtime_.model() == ThreadModel::kShared;
  asio::steady_timer backoff(acceptor.get_executor());
  while (!draining_) {
    tcp::socket socket(shared ? asio::any_io_executor(asio::make_strand(ctx)) : asio::any_io_executor(ctx.get_executor()));
    auto [ec] = co_await acceptor.async_accept(socket, kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || draining_) break;
      // EMFILE and friends: back off instead of spinning on a full descriptor table.
      spdlog::warn("accept failed service={} error=\"{}\"", options_.service, ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(kUseTuple);
      continue;
    }
    if (open_connections_.load() >= options_.max_connections) {
      http_metrics_.rejected_connections().Increment();
      // Answer 503 from a short-lived coroutine, at most kMaxRejecting at once; beyond that a
      // flood is simply closed.
      if (rejecting_.load() < kMaxRejecting) {
        auto executor = socket.get_executor();
        asio::co_spawn(executor, RejectOverloaded(std::move(socket)), asio::detached);
      } else {
        sys::error_code ignored;
        socket.close(ignored);
      }
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto connection = std::make_shared<Connection>(std::move(socket));
    auto executor = connection->socket.get_executor();
    asio::co_spawn(executor, RunSession(std::move(connection)), asio::detached);
  }
}

asio::awaitable<void> HttpServer::RejectOverloaded(tcp::socket socket) {
  static constexpr std::string_view kBusy =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
      "Retry-After: 1\r\nContent-Length: 75\r\n\r\n"
      "{\"error\":\"Overloaded\",\"message\":\"too many open connections, retry later\"}\n";
  rejecting_.fetch_add(1);
  auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(kBusy), kUseTuple);
  if (!wec) {
    co_await LingeringClose(socket, std::chrono::seconds(1), 64 * 1024);
  } else {
    sys::error_code ignored;
    socket.close(ignored);
  }
  rejecting_.fetch_sub(1);
}

// -----------------------------------------------------------------------------------------------
// Session

namespace {

// Sends `head` and then `segments` to the socket. Returns the body bytes written and whether
// every byte went out.
struct SendResult {
  std::uint64_t body_bytes = 0;
  bool complete = false;
};

class ResponseWriter {
 public:
  ResponseWriter(HttpServer::Connection& c, const HttpServerOptions& options, std::vector<char>& chunk)
      : c_(c), options_(options), chunk_(chunk) {}

  asio::awaitable<SendResult> Send(std::string head, std::vector<BodySegment>& segments) {
    SendResult result;
    started_ = Clock::now();
    pending_ = std::move(head);
    for (auto& segment : segments) {
      if (auto* text = std::get_if<std::string>(&segment)) {
        if (pending_.size() + text->size() <= 64 * 1024) {
          pending_ += *text;  // small parts (multipart boundaries) ride with the next write
          result.body_bytes += text->size();
          continue;
        }
        if (!co_await WriteWithPending(asio::buffer(*text))) co_return result;
        result.body_bytes += text->size();
        continue;
      }
      if (auto* stream = std::get_if<StreamSlice>(&segment)) {
        if (!co_await SendStreamSlice(*stream, result)) co_return result;
        continue;
      }
      auto& slice = std::get<FileSlice>(segment);
      bool ok = options_.file_send_mode == FileSendMode::kSendfile ? co_await SendFileSlice(slice, result)
                                                                   : co_await ReadFileSlice(slice, result);
      if (!ok) co_return result;
    }
    if (!pending_.empty() && !co_await WriteWithPending(asio::const_buffer())) co_return result;
    result.complete = true;
    co_return result;
  }

 private:
  // Writes pending bytes (header, small parts) together with `data` in one gathered send.
  asio::awaitable<bool> WriteWithPending(asio::const_buffer data) {
    std::array<asio::const_buffer, 2> buffers{asio::buffer(pending_), data};
    SetDeadline(c_, StepDeadline(options_, started_, sent_));
    auto [ec, n] = co_await asio::async_write(c_.socket, buffers, kUseTuple);
    sent_ += n;
    pending_.clear();
    co_return !ec;
  }

  // read path: read a chunk of the file (through io_uring), send it, repeat.
  asio::awaitable<bool> ReadFileSlice(FileSlice& slice, SendResult& result) {
    if (chunk_.empty()) chunk_.resize(options_.file_chunk_bytes);  // only connections that need it
#if defined(BOOST_ASIO_HAS_FILE)
    asio::random_access_file file(c_.socket.get_executor());
    sys::error_code ec;
    // The file keeps its own descriptor: the slice's may be shared with other segments.
    file.assign(::dup(slice.file->get()), ec);
    if (ec) co_return false;
#endif
    std::uint64_t offset = slice.offset;
    std::uint64_t left = slice.length;
    while (left > 0) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk_.size()));
#if defined(BOOST_ASIO_HAS_FILE)
      auto [rec, got] = co_await asio::async_read_at(file, offset, asio::buffer(chunk_.data(), want), kUseTuple);
#else
      // An epoll build has no asynchronous files: pread(2) from the page cache.
      ssize_t n = ::pread(slice.file->get(), chunk_.data(), want, static_cast<off_t>(offset));
      const bool rec = n < 0;
      const std::size_t got = n > 0 ? static_cast<std::size_t>(n) : 0;
#endif
      if (got == 0) co_return false;  // the file shrank under us: never send short bodies as complete
      if (!co_await WriteWithPending(asio::buffer(chunk_.data(), got))) co_return false;
      offset += got;
      left -= got;
      result.body_bytes += got;
      if (rec && got < want) co_return false;
    }
    co_return true;
  }

  // A proxied slice: read a piece from the source, send it, repeat. The connection's deadline
  // restarts for each piece, so a slow source is bounded by its own timeout, not the client's.
  asio::awaitable<bool> SendStreamSlice(StreamSlice& slice, SendResult& result) {
    if (chunk_.empty()) chunk_.resize(options_.file_chunk_bytes);
    std::uint64_t left = slice.length;
    while (left > 0) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk_.size()));
      SetDeadline(c_, Clock::time_point::max());
      auto got = co_await slice.read(std::span<char>(chunk_.data(), want));
      if (!got.ok() || *got == 0 || *got > want) {
        spdlog::warn("{}: a proxied body ended {} bytes short: {}", options_.service, left,
                     got.ok() ? std::string("the source ended early") : got.status().message());
        co_return false;
      }
      if (!co_await WriteWithPending(asio::buffer(chunk_.data(), *got))) co_return false;
      left -= *got;
      result.body_bytes += *got;
    }
    co_return true;
  }

  // sendfile path: the kernel copies from the page cache; we wait for writability via io_uring.
  asio::awaitable<bool> SendFileSlice(FileSlice& slice, SendResult& result) {
    const int fd = c_.socket.native_handle();
    if (slice.length <= kCopySliceMax) {
      SendSmallSliceCopied(fd, slice, result);
      if (slice.length == 0 && pending_.empty()) co_return true;
    }
    if (!pending_.empty()) {
      // The header goes out with MSG_MORE so the kernel coalesces it with the first file bytes
      // (what nginx's tcp_nopush does); only if the socket is full do we wait through io_uring.
      ssize_t n = ::send(fd, pending_.data(), pending_.size(), MSG_MORE | MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        pending_.erase(0, static_cast<std::size_t>(n));
        sent_ += static_cast<std::uint64_t>(n);
      }
      if (!pending_.empty() && !co_await WriteWithPending(asio::const_buffer())) co_return false;
    }
    // sendfile(2) has no per-call non-blocking flag: switch the socket for the duration only, so
    // Asio's own socket operations keep their usual blocking-mode fast path.
    const int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    off_t offset = static_cast<off_t>(slice.offset);
    std::uint64_t left = slice.length;
    bool ok = true;
    while (left > 0) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, options_.file_chunk_bytes * 4));
      ssize_t n = ::sendfile(fd, slice.file->get(), &offset, want);
      if (n > 0) {
        left -= static_cast<std::uint64_t>(n);
        result.body_bytes += static_cast<std::uint64_t>(n);
        sent_ += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        SetDeadline(c_, StepDeadline(options_, started_, sent_));
        auto [ec] = co_await c_.socket.async_wait(tcp::socket::wait_write, kUseTuple);
        if (!ec) continue;
      }
      ok = false;  // error, client gone, or the file shrank (n == 0)
      break;
    }
    if (c_.socket.is_open()) ::fcntl(fd, F_SETFL, flags);
    co_return ok;
  }

  // Slices up to this size are copied instead: on small slices sendfile(2)'s fixed cost per call
  // outweighs a copy from a buffer that stays in the CPU cache (bench/RESULTS.md, send paths).
  static constexpr std::size_t kCopySliceMax = 128 * 1024;

  // One pread into this thread's buffer, then one non-blocking gathered send of the pending header
  // and the slice. `slice` and `result` advance by what the socket took; the caller sends the rest.
  void SendSmallSliceCopied(int fd, FileSlice& slice, SendResult& result) {
    thread_local std::vector<char> buffer(kCopySliceMax);  // no co_await while it is in use
    const auto length = static_cast<std::size_t>(slice.length);
    ssize_t got = ::pread(slice.file->get(), buffer.data(), length, static_cast<off_t>(slice.offset));
    if (got != static_cast<ssize_t>(length)) return;  // a short file: sendfile's path reports it
    iovec parts[2] = {{pending_.data(), pending_.size()}, {buffer.data(), length}};
    msghdr message{};
    message.msg_iov = pending_.empty() ? &parts[1] : parts;
    message.msg_iovlen = pending_.empty() ? 1 : 2;
    ssize_t sent = ::sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent <= 0) return;
    const std::size_t of_header = std::min(static_cast<std::size_t>(sent), pending_.size());
    pending_.erase(0, of_header);
    const std::size_t of_body = static_cast<std::size_t>(sent) - of_header;
    slice.offset += of_body;
    slice.length -= of_body;
    result.body_bytes += of_body;
    sent_ += static_cast<std::uint64_t>(sent);
  }

  HttpServer::Connection& c_;
  const HttpServerOptions& options_;
  std::vector<char>& chunk_;
  std::string pending_;
  Clock::time_point started_{};  // the response's rate is counted from the start of its send
  std::uint64_t sent_ = 0;       // bytes of it the socket took
};

}  // namespace

asio::awaitable<void> HttpServer::TakeOver(Connection& c, Response& response, const RequestHeader& header,
                                           const std::string& request_id, const std::string& target_for_log,
                                           Clock::time_point started) {
  c.taken_over = true;
  c.deadline = Clock::time_point::max();  // the watchdog sleeps until the connection ends
  if (options_.access_log) {
    spdlog::info("access service={} id={} peer={} method=GET target=\"{}\" status=101 upgrade=true",
                 options_.service, request_id, c.peer, target_for_log);
  }
  http_metrics_.RecordRequest(101, 0, std::chrono::duration<double>(Clock::now() - started).count());
  try {
    co_await response.take_over(c.socket, header);
  } catch (const std::exception& e) {
    spdlog::error("connection handler failed service={} id={} error=\"{}\"", options_.service, request_id,
                  e.what());
  }
}

asio::awaitable<void> HttpServer::RunSession(std::shared_ptr<Connection> c) {
  open_connections_.fetch_add(1);
  http_metrics_.open_connections().Increment();
  Register(c.get());
  c->peer = PeerAddress(c->socket);
  {
    sys::error_code ec;
    c->peer_address = c->socket.remote_endpoint(ec).address();
    c->peer_is_trusted_proxy = !ec && options_.trusted_proxies.Contains(c->peer_address);
  }
  c->deadline = Clock::now() + options_.header_timeout;  // the watchdog arms itself for this
  asio::co_spawn(c->socket.get_executor(), Watchdog(c), asio::detached);

  beast::flat_buffer buffer;
  std::vector<char> chunk;  // read-mode file buffer, allocated on first use
  std::string head;
  bool first_request = true;
  bool unread_request = false;  // the last request's body was not read to its end

  for (;;) {
    // Wait for the first byte of the next request under the idle deadline, then give the rest
    // of the header `header_timeout`. The first request gets only the header deadline.
    c->idle = true;
    if (draining_) break;
    if (!first_request && buffer.size() == 0) {
      SetDeadline(*c, Clock::now() + options_.idle_timeout);
      auto [ec, n] = co_await c->socket.async_read_some(buffer.prepare(4096), kUseTuple);
      if (ec) break;
      buffer.commit(n);
    }
    first_request = false;
    c->idle = false;
    // Moving the deadline earlier without waking the watchdog: on a keep-alive connection the
    // header deadline is enforced when the idle timer next fires. That saves a timer re-arm per
    // request; a client dribbling a later request is still cut off within idle + header timeout.
    c->deadline = Clock::now() + options_.header_timeout;

    http::request_parser<http::buffer_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(options_.header_limit, UINT32_MAX)));
    parser.body_limit(boost::none);  // handlers enforce their own limits as they read
    auto [ec, n] = co_await http::async_read_header(c->socket, buffer, parser, kUseTuple);
    const auto started = Clock::now();

    Response response;
    bool keep_alive = true;
    std::string request_id;
    if (ec) {
      if (ec == http::error::end_of_stream || c->timed_out || ec == asio::error::operation_aborted ||
          ec == asio::error::eof || ec == asio::error::connection_reset) {
        if (c->timed_out) http_metrics_.timed_out_connections().Increment();
        break;
      }
      keep_alive = false;
      response = ec == http::error::header_limit
                     ? ErrorResponse(http::status::request_header_fields_too_large, "HeaderTooLarge",
                                     "request header exceeds " + std::to_string(options_.header_limit) + " bytes")
                     : ErrorResponse(http::status::bad_request, "BadRequest", "malformed HTTP request");
      request_id = MakeRequestId({});
    }

    http::verb method = http::verb::unknown;
    std::string target_for_log = "-";
    std::string client_for_log = c->peer;  // the peer, or the client a trusted proxy names
    std::string via_for_log;
    ParserBodySource body(*c, buffer, parser, options_);
    if (!ec) {
      auto& header = parser.get();
      method = header.method();
      target_for_log = RedactedTarget(header.target());
      if (c->peer_is_trusted_proxy) {
        std::vector<std::string_view> forwarded;
        for (auto [it, end] = header.equal_range("X-Forwarded-For"); it != end; ++it) forwarded.push_back(it->value());
        const auto client = options_.trusted_proxies.ClientAddress(c->peer_address, forwarded);
        if (client != c->peer_address) {
          client_for_log = client.to_string();
          via_for_log = " via=" + c->peer;
        }
      }
      request_id = MakeRequestId(header["X-Request-Id"]);
      keep_alive = header.keep_alive();
      auto url = boost::urls::parse_origin_form(header.target());
      if (!url) {
        response = ErrorResponse(http::status::bad_request, "BadRequest", "request target is not a valid path");
      } else {
        Request request(header, *url, request_id, &body);
        auto match = router_.Find(method, *url, request.params());
        if (match.kind == Router::MatchKind::kNotFound) {
          response = ErrorResponse(http::status::not_found, "NotFound", "no such resource");
        } else if (match.kind == Router::MatchKind::kMethodNotAllowed) {
          response = ErrorResponse(http::status::method_not_allowed, "MethodNotAllowed",
                                   "method not allowed on this resource");
          response.header.set(http::field::allow, match.allow);
        } else {
          try {
            response = co_await (*match.handler)(request);
          } catch (const std::exception& e) {
            spdlog::error("handler failed service={} id={} error=\"{}\"", options_.service, request_id, e.what());
            response = ErrorResponse(http::status::internal_server_error, "InternalError", "internal error");
          }
        }
      }
      if (method == http::verb::head) response.omit_body = true;
      // An unread body would be parsed as the next request: close instead (lingering, below).
      if (!body.done()) {
        keep_alive = false;
        unread_request = true;
      }
    }
    if (draining_) keep_alive = false;
    if (!c->socket.is_open()) break;
    if (response.take_over && !ec) {
      co_await TakeOver(*c, response, parser.get(), request_id, target_for_log, started);
      break;
    }
    if (c->timed_out) {
      // A body read timed out: the handler's answer (408) still goes out, then we close.
      http_metrics_.timed_out_connections().Increment();
      c->timed_out = false;
      keep_alive = false;
    }
    SetDeadline(*c, Clock::now() + options_.io_timeout);

    // Header fields every answer carries.
    const auto status = response.header.result_int();
    const std::uint64_t length = response.omit_body && response.omitted_length
                                     ? *response.omitted_length
                                     : response.BodyLength();
    response.header.version(11);
    response.header.set(http::field::server, "plyr-core");
    response.header.set(http::field::date, HttpDate());
    response.header.set("X-Request-Id", request_id);
    if (status != 304 && status != 204 && !(status >= 100 && status < 200)) {
      response.header.set(http::field::content_length, std::to_string(length));
    }
    response.header.set(http::field::connection, keep_alive ? "keep-alive" : "close");
    SerializeHeader(std::move(response.header), head);

    std::vector<BodySegment> segments;
    if (!response.omit_body && status != 304) {
      if (response.segments.empty()) {
        if (!response.body.empty()) segments.emplace_back(std::move(response.body));
      } else {
        segments = std::move(response.segments);
      }
    }
    ResponseWriter writer(*c, options_, chunk);
    SendResult sent = co_await writer.Send(std::move(head), segments);
    head.clear();

    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    http_metrics_.RecordRequest(status, sent.body_bytes, seconds);
    if (options_.access_log) {
      spdlog::info("access service={} id={} peer={} method={} target=\"{}\" status={} bytes={} ms={:.3f}{}{}",
                   options_.service, request_id, client_for_log, http::to_string(method), target_for_log, status,
                   sent.body_bytes, seconds * 1000, via_for_log, sent.complete ? "" : " aborted=true");
    }
    if (!sent.complete || !keep_alive) break;
  }

  if (c->timed_out) http_metrics_.timed_out_connections().Increment();
  if (unread_request && c->socket.is_open()) {
    co_await LingeringClose(c->socket, std::chrono::seconds(2), 16 << 20);
  } else {
    sys::error_code ignored;
    c->socket.shutdown(tcp::socket::shutdown_send, ignored);
    c->socket.close(ignored);
  }
  c->timer.cancel();
  Unregister(c.get());
  http_metrics_.open_connections().Decrement();
  open_connections_.fetch_sub(1);
}

}  // namespace plyr
