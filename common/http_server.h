// HttpServer: an HTTP/1.1 listener on Beast, running on the Runtime's contexts.
//
// What it guarantees, whatever the client does:
//   - limits: request headers over `header_limit` get 431; bodies are read only when a handler
//     asks, with the handler's own limit; at most `max_connections` are open (the next one is
//     answered 503 and closed);
//   - deadlines: a request header must arrive within `header_timeout` of its first byte (a
//     client dribbling one byte a second is cut off), a keep-alive connection may sit idle for
//     `idle_timeout`, a body read or a response write that makes no progress for `io_timeout`
//     closes the connection, and so does a request body or a response that averages less than
//     `min_rate_bytes_per_s` once `min_rate_grace` has passed (a sender or a reader that moves a
//     byte just often enough to beat `io_timeout` still cannot hold a connection for hours);
//   - every answer is JSON `{"error","message"}` on failure, carries `X-Request-Id`, and is
//     logged as one access line (with ticket and token query values redacted);
//   - GET /health and GET /metrics exist on every listener.
// A handler may take the connection over (Response::take_over, for WebSocket upgrades); the
// connection still counts toward `max_connections` and is cancelled on shutdown.
// Shutdown: BeginShutdown() stops accepting and closes idle connections at once; a request in
// flight finishes, then its connection closes. Past its drain deadline the owner calls
// CloseAll(), and stops the Runtime when open_connections() and accept_loops() reach zero.
//
// Thread rule: Create() and Start() on the main thread before Runtime::Run(); BeginShutdown(),
// CloseAll() and open_connections() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "common/metrics.h"
#include "common/router.h"
#include "common/runtime.h"
#include "common/status.h"
#include "common/trusted_proxies.h"

namespace plyr {

// How file slices in a response reach the socket.
enum class FileSendMode {
  kRead,      // io_uring read into a per-connection buffer, then an io_uring send
  kSendfile,  // sendfile(2) from the page cache, waiting for writability through io_uring poll
};

struct HttpServerOptions {
  std::string service = "http";  // names the listener in logs and metrics
  std::size_t header_limit = 16 * 1024;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds io_timeout{30'000};
  std::uint64_t min_rate_bytes_per_s = 1024;  // 0: no floor
  std::chrono::milliseconds min_rate_grace{10'000};
  std::size_t max_connections = 10'000;
  bool access_log = true;
  FileSendMode file_send_mode = FileSendMode::kSendfile;
  std::size_t file_chunk_bytes = 256 * 1024;
  // Peers whose X-Forwarded-For names the client (the access log's peer=; via= the proxy).
  TrustedProxies trusted_proxies;
};

class HttpServer {
 public:
  // Binds `endpoint` (port 0: the OS picks one) on every context of `runtime`: one SO_REUSEPORT
  // acceptor per context in the per-core model, one acceptor otherwise. Adds /health and
  // /metrics to `router`. `runtime` and `metrics` must outlive the server. Unavailable (with the
  // address and the system's reason) when the address cannot be bound.
  static StatusOr<std::unique_ptr<HttpServer>> Create(Runtime& runtime, const asio::ip::tcp::endpoint& endpoint,
                                                      Router router, HttpServerOptions options,
                                                      MetricsRegistry& metrics);
  ~HttpServer();

  // The bound port (useful after binding port 0).
  std::uint16_t port() const { return port_; }
  const HttpServerOptions& options() const { return options_; }
  // Starts the accept loops.
  void Start();
  // Stops accepting and closes idle connections; requests in flight complete.
  void BeginShutdown();
  // Closes every connection still open (after the drain deadline): a request in flight ends as
  // an aborted write, and its session unwinds on its own thread while the server still exists.
  void CloseAll();
  std::size_t open_connections() const { return open_connections_.load(); }
  // Accept loops still running: after BeginShutdown they end once their acceptor's close is
  // processed. The owner waits for zero before stopping the Runtime, so no accept is left
  // suspended when the contexts are destroyed.
  std::size_t accept_loops() const { return accept_loops_.load(); }

  // Implementation detail shared with the session code in http_server.cpp.
  struct Connection;

 private:
  HttpServer(Runtime& runtime, Router router, HttpServerOptions options, MetricsRegistry& metrics);
  asio::awaitable<void> AcceptLoop(asio::ip::tcp::acceptor& acceptor);
  asio::awaitable<void> RunSession(std::shared_ptr<Connection> connection);
  asio::awaitable<void> TakeOver(Connection& c, Response& response, const RequestHeader& header,
                                 const std::string& request_id, const std::string& target_for_log,
                                 std::chrono::steady_clock::time_point started);
  asio::awaitable<void> RejectOverloaded(asio::ip::tcp::socket socket);
  // Runs `action` on each open connection, on that connection's executor.
  void PostToEachConnection(std::function<void(Connection&)> action);
  void Register(Connection* c);
  void Unregister(Connection* c);

  Runtime& runtime_;
  Router router_;
  HttpServerOptions options_;
  MetricsRegistry& metrics_;
  HttpMetrics http_metrics_;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::uint16_t port_ = 0;
  std::atomic<bool> draining_{false};
  std::atomic<std::size_t> open_connections_{0};
  std::atomic<std::size_t> accept_loops_{0};
  static constexpr std::size_t kMaxRejecting = 256;
  std::atomic<std::size_t> rejecting_{0};  // 503 answers in flight
  std::mutex connections_mutex_;
  std::unordered_set<Connection*> connections_;  // guarded by connections_mutex_
};

}  // namespace plyr
