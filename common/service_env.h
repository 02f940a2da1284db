// ServiceEnv: what the process gives every service it starts: the runtime, the metrics registry,
// the data folder, the admin token and the listener defaults. Services borrow it; it outlives them.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "common/http_client.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/runtime.h"
#include "common/s3_client.h"
#include "common/status.h"

namespace plyr {

struct ServiceEnv {
  Runtime& runtime;
  MetricsRegistry& metrics;
  HttpClient& http_client;
  std::filesystem::path data_dir;
  std::string admin_token;
  HttpServerOptions server_defaults;  // limits, deadlines, logging; each service sets `service`
  // PostgreSQL for the stores that run on it (database.url; empty: SQLite in data_dir), and the
  // connections each service's pool keeps.
  std::string database_url = {};
  int database_connections = 4;
  // The S3-compatible store that holds the blobs (storage.s3.*), when its endpoint is set; else
  // blobs stay in data_dir. Each service keeps its objects under `object_prefix` + its name.
  std::optional<S3Settings> object_store = {};
  std::string object_prefix = {};
};

// A running service: its listener and whatever state it owns.
class Service {
 public:
  virtual ~Service() = default;
  virtual std::string_view name() const = 0;
  virtual HttpServer& server() = 0;
};

// Parses "host:port" ("127.0.0.1:8410", "[::1]:0"); the host must be an IP address.
// InvalidArgument saying what is wrong otherwise.
StatusOr<asio::ip::tcp::endpoint> ParseListenAddress(std::string_view text);

// Starts a service's listener on `listen` ("host:port", the value of the `<service>.listen`
// setting) with `options` (the environment's server defaults with the service's own changes).
// InvalidArgument when `listen` is not host:port with an IP address, Unavailable when it cannot
// be bound.
StatusOr<std::unique_ptr<HttpServer>> ListenForService(ServiceEnv& env, const std::string& listen, Router router,
                                                       const HttpServerOptions& options);

// Threads of a pool for CPU-bound work: `configured`, or one per core when it is 0.
unsigned WorkerThreads(unsigned configured);

// True when a request carries the admin token as `Authorization: Bearer <token>` (compared in
// constant time).
bool HasAdminToken(const Request& request, std::string_view token);
// The 401 every service answers when the admin token is missing or wrong.
Response AdminTokenRequired();

}  // namespace plyr
