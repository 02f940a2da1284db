#include "common/router.h"

#include <boost/url/segments_view.hpp>

namespace plyr {

namespace {

std::vector<std::string> SplitPattern(std::string_view pattern) {
  std::vector<std::string> out;
  while (!pattern.empty()) {
    if (pattern.front() == '/') {
      pattern.remove_prefix(1);
      continue;
    }
    auto slash = pattern.find('/');
    out.emplace_back(pattern.substr(0, slash));
    pattern = slash == std::string_view::npos ? std::string_view{} : pattern.substr(slash);
  }
  return out;
}

bool IsParam(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

void Router::Add(http::verb method, std::string_view pattern, Handler handler) {
  routes_.push_back(Route{method, SplitPattern(pattern), std::move(handler)});
}

std::vector<std::pair<http::verb, std::string>> Router::Routes() const {
  std::vector<std::pair<http::verb, std::string>> out;
  for (const auto& route : routes_) {
    std::string pattern;
    for (const auto& segment : route.segments) pattern += "/" + segment;
    out.emplace_back(route.method, pattern.empty() ? "/" : pattern);
  }
  return out;
}

bool Router::MatchPath(const Route& route, const std::vector<std::string>& segments,
                       std::vector<std::pair<std::string, std::string>>& params) const {
  if (route.segments.size() != segments.size()) return false;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (IsParam(route.segments[i])) {
      if (segments[i].empty()) return false;
    } else if (route.segments[i] != segments[i]) {
      return false;
    }
  }
  params.clear();
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (IsParam(route.segments[i])) {
      params.emplace_back(route.segments[i].substr(1, route.segments[i].size() - 2), segments[i]);
    }
  }
  return true;
}

Router::Match Router::Find(http::verb method, const boost::urls::url_view& url,
                           std::vector<std::pair<std::string, std::string>>& params) const {
  std::vector<std::string> segments;
  for (auto s : url.segments()) segments.push_back(std::string(s));
  // "/a/b/" and "/a/b" are the same resource here.
  if (!segments.empty() && segments.back().empty()) segments.pop_back();

  Match match;
  const Route* get_route = nullptr;
  std::vector<std::pair<std::string, std::string>> scratch;
  for (const auto& route : routes_) {
    if (!MatchPath(route, segments, scratch)) continue;
    if (route.method == method) {
      params = std::move(scratch);
      match.kind = MatchKind::kFound;
      match.handler = &route.handler;
      return match;
    }
    if (route.method == http::verb::get) get_route = &route;
    if (!match.allow.empty()) match.allow += ", ";
    match.allow += std::string(http::to_string(route.method));
    if (route.method == http::verb::get) match.allow += ", HEAD";
    match.kind = MatchKind::kMethodNotAllowed;
  }
  if (method == http::verb::head && get_route) {
    MatchPath(*get_route, segments, params);
    match.kind = MatchKind::kFound;
    match.handler = &get_route->handler;
    match.allow.clear();
  }
  return match;
}

}  // namespace plyr
