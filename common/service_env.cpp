#include "common/service_env.h"

#include <algorithm>
#include <charconv>
#include <thread>

namespace plyr {

StatusOr<asio::ip::tcp::endpoint> ParseListenAddress(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) {
    return Status(StatusCode::kInvalidArgument, "\"" + std::string(text) + "\" is not host:port");
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return Status(StatusCode::kInvalidArgument, "the port of \"" + std::string(text) + "\" is not a number up to 65535");
  }
  boost::system::error_code aec;
  auto address = asio::ip::make_address(std::string(host), aec);
  if (aec) {
    return Status(StatusCode::kInvalidArgument, "the host of \"" + std::string(text) + "\" is not an IP address");
  }
  return asio::ip::tcp::endpoint(address, static_cast<unsigned short>(port));
}

StatusOr<std::unique_ptr<HttpServer>> ListenForService(ServiceEnv& env, const std::string& listen, Router router,
                                                       const HttpServerOptions& options) {
  auto endpoint = ParseListenAddress(listen);
  if (!endpoint.ok()) return Status(StatusCode::kInvalidArgument, options.service + ".listen: " + endpoint.status().message());
  return HttpServer::Create(env.runtime, *endpoint, std::move(router), options, env.metrics);
}

unsigned WorkerThreads(unsigned configured) {
  return configured ? configured : std::max(1u, std::thread::hardware_concurrency());
}

bool HasAdminToken(const Request& request, std::string_view token) {
  auto presented = request.BearerToken();
  return presented && !token.empty() && ConstantTimeEquals(*presented, token);
}

Response AdminTokenRequired() {
  Response r = ErrorResponse(http::status::unauthorized, "AuthenticationRequired",
                             "this endpoint needs the admin token as 'Authorization: Bearer <token>'");
  r.header.set(http::field::www_authenticate, "Bearer");
  return r;
}

}  // namespace plyr
