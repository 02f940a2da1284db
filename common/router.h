// Router: maps (method, path) to a handler, with `{name}` path parameters.
//
// Patterns are split on '/'; each segment is a literal or a `{name}` that matches exactly one
// non-empty segment. Matching uses the request's percent-decoded segments, so "%2F" inside a
// parameter arrives as '/' and the handler's own validation refuses it; it can never add a
// path level. HEAD is routed to the GET handler when no HEAD handler is registered (the server
// then drops the body). Build the router before the server starts; lookups are read-only and
// thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_message.h"

namespace plyr {

using Handler = std::function<asio::awaitable<Response>(Request&)>;

class Router {
 public:
  // Registers `handler` for `method` on `pattern` ("/v1/tracks/{file_id}").
  void Add(http::verb method, std::string_view pattern, Handler handler);
  // Registers a member function of `service` (which must outlive the router) as the handler.
  template <typename Service>
  void Add(http::verb method, std::string_view pattern, Service* service,
           asio::awaitable<Response> (Service::*member)(Request&)) {
    Add(method, pattern, [service, member](Request& request) { return (service->*member)(request); });
  }

  enum class MatchKind { kFound, kNotFound, kMethodNotAllowed };
  struct Match {
    MatchKind kind = MatchKind::kNotFound;
    const Handler* handler = nullptr;  // set for kFound
    std::string allow;                 // set for kMethodNotAllowed: "GET, HEAD"
  };
  // Every registered (method, pattern), in registration order: what a server announces at start.
  std::vector<std::pair<http::verb, std::string>> Routes() const;

  // Finds the handler for a request, filling `params` with decoded path parameters.
  Match Find(http::verb method, const boost::urls::url_view& url,
             std::vector<std::pair<std::string, std::string>>& params) const;

 private:
  struct Route {
    http::verb method;
    std::vector<std::string> segments;  // "{name}" marks a parameter
    Handler handler;
  };
  bool MatchPath(const Route& route, const std::vector<std::string>& segments,
                 std::vector<std::pair<std::string, std::string>>& params) const;
  std::vector<Route> routes_;
};

}  // namespace plyr
