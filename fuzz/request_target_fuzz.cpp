// A request line's method and target, as the HTTP server reads them: parsed as origin-form, then
// routed over the services' route shapes. Never a crash; a match binds exactly the pattern's
// parameters, each one non-empty, decoded, and a whole segment (a decoded '/' stays inside the
// value, so a parameter can never add a path level); query parameters decode.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/url/parse.hpp>

#include "common/router.h"

namespace {

const plyr::Router& Routes() {
  static const plyr::Router router = [] {
    plyr::Router r;
    for (const char* pattern : {"/audio/{file_id}", "/v1/files/{file_id}", "/v1/tracks/{file_id}", "/v1/jobs/{id}",
                                "/v1/jobs/{id}/events", "/v1/references/{id}", "/v1/files", "/v1/gc",
                                "/xrpc/com.atproto.label.queryLabels", "/xrpc/com.atproto.label.subscribeLabels",
                                "/.well-known/did.json", "/metrics", "/healthz"}) {
      r.Add(boost::beast::http::verb::get, pattern, plyr::Handler{});
      r.Add(boost::beast::http::verb::delete_, pattern, plyr::Handler{});
    }
    r.Add(boost::beast::http::verb::put, "/v1/tracks/{file_id}", plyr::Handler{});
    return r;
  }();
  return router;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  namespace http = boost::beast::http;
  const http::verb methods[] = {http::verb::get, http::verb::head, http::verb::put, http::verb::delete_,
                                http::verb::post};
  const http::verb method = methods[data[0] % 5];
  const std::string_view target(reinterpret_cast<const char*>(data + 1), size - 1);
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return 0;

  std::vector<std::pair<std::string, std::string>> params;
  const auto match = Routes().Find(method, *url, params);
  std::size_t segments = 0;
  for (auto s : url->segments()) {
    (void)s;
    ++segments;
  }
  if (match.kind == plyr::Router::MatchKind::kFound) {
    if (!match.handler) std::abort();
    for (const auto& [name, value] : params) {
      if (name.empty() || value.empty()) std::abort();
    }
    if (params.size() > segments) std::abort();
  } else if (!params.empty()) {
    std::abort();  // nothing bound without a match
  }
  if (match.kind == plyr::Router::MatchKind::kMethodNotAllowed && match.allow.empty()) std::abort();
  for (const char* name : {"rendition", "limit", "cursor", "uriPatterns", "sources", "title"}) {
    auto it = url->params().find(name);
    if (it != url->params().end()) (void)std::string((*it).value);
  }
  return 0;
}
