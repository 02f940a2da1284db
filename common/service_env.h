// ServiceEnv: what the process gives every service it starts: the runtime, the metrics registry,
// the data folder, the admin token and the listener defaults. Services borrow it; it outlives them.
#pragma once

#include <filesystem>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/result.hpp>

#include "common/http_client.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/runtime.h"

namespace plyr {

struct ServiceEnv {
  Runtime& runtime;
  MetricsRegistry& metrics;
  HttpClient& http_client;
  std::filesystem::path data_dir;
  std::string admin_token;
  HttpServerOptions server_defaults;  // limits, deadlines, logging; each service sets `service`
};

// A running service: its listener and whatever state it owns.
class Service {
 public:
  virtual ~Service() = default;
  virtual std::string_view name() const = 0;
  virtual HttpServer& server() = 0;
};

// Parses "host:port" ("127.0.0.1:8410", "[::1]:0"); the host must be an IP address.
boost::system::result<asio::ip::tcp::endpoint> ParseListenAddress(std::string_view text);

// True when a request carries the admin token as `Authorization: Bearer <token>` (compared in
// constant time).
bool HasAdminToken(const Request& request, std::string_view token);
// The 401 every service answers when the admin token is missing or wrong.
Response AdminTokenRequired();

}  // namespace plyr
