// The auth matrix: every route of every service, as the running binary announces them, asked
// with no token, a wrong token and the right one. A route is public only when it is listed
// below with the reason; any other route (including one added later and forgotten here) must
// refuse both missing and wrong tokens with 401 and accept the right one.
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/process.h"
#include "tests/support/test_http_client.h"

namespace plyr {
namespace {

struct Route {
  std::string service, method, pattern;
  std::string Name() const { return service + " " + method + " " + pattern; }
};

// Public on purpose, and why.
const std::map<std::string, std::string>& PublicRoutes() {
  static const std::map<std::string, std::string> routes = {
      // Every listener: liveness for load balancers, and the Prometheus scrape (keep the listener
      // private or filter /metrics at the proxy; it holds counts, no secrets).
      {"GET /health", "liveness"},
      {"GET /metrics", "Prometheus scrape"},
      // Listeners gate audio themselves: a signed stream ticket for supporters-only tracks.
      {"streamer GET /audio/{file_id}", "the audio itself; gated tracks need a ticket"},
      // ATProto requires these to be public.
      {"labeler GET /xrpc/com.atproto.label.queryLabels", "ATProto label query"},
      {"labeler GET /xrpc/com.atproto.label.subscribeLabels", "ATProto label stream"},
      {"labeler GET /.well-known/did.json", "the labeler's DID document (did:web)"},
  };
  return routes;
}

// plyr.fm's drop-in transcoder endpoint keeps that service's contract: the key in X-Transcoder-Key
// (or the admin token as a Bearer), and its own error body.
bool IsDropIn(const Route& route) { return route.Name() == "transcoder POST /transcode"; }

bool IsPublic(const Route& route) {
  const auto& routes = PublicRoutes();
  return routes.contains(route.method + " " + route.pattern) ||
         routes.contains(route.service + " " + route.method + " " + route.pattern);
}

// The routes the binary logs at debug level when it starts ("route service=... method=... pattern=...").
std::vector<Route> AnnouncedRoutes(const std::string& log) {
  std::vector<Route> routes;
  const std::regex line(R"(route service=(\w+) method=(\w+) pattern=(\S+))");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it) {
    routes.push_back({(*it)[1], (*it)[2], (*it)[3]});
  }
  return routes;
}

// The pattern with each {parameter} filled in with a well-formed id nothing has.
std::string TargetOf(const std::string& pattern) {
  return std::regex_replace(pattern, std::regex(R"(\{[a-z_]+\})"), "0123456789abcdef");
}

TEST(AuthMatrix, EveryRouteOfEveryServiceIsPublicOnPurposeOrNeedsTheAdminToken) {
  testing::TempDir dir;
  testing::PlyrProcess process(dir.path() / "data");
  ASSERT_TRUE(process.StartServe({"--log-level", "debug"})) << process.log();
  const std::string token = process.admin_token();
  ASSERT_GE(token.size(), 24u);

  const auto routes = AnnouncedRoutes(process.log());
  std::set<std::string> services;
  for (const auto& route : routes) services.insert(route.service);
  EXPECT_EQ(services, (std::set<std::string>{"streamer", "labeler", "transcoder", "fingerprint"}))
      << "every service announces its routes";
  ASSERT_GT(routes.size(), 20u);

  int guarded = 0;
  for (const auto& route : routes) {
    SCOPED_TRACE(route.Name());
    const unsigned short port = process.port(route.service);
    const std::string target = TargetOf(route.pattern);
    const auto none = testing::Fetch(port, route.method, target);
    if (IsPublic(route)) {
      EXPECT_NE(none.status, 401) << "a public route answers without a token";
      continue;
    }
    ++guarded;
    EXPECT_EQ(none.status, 401) << "no token";
    if (IsDropIn(route)) {
      EXPECT_EQ(testing::Fetch(port, route.method, target, {{"X-Transcoder-Key", token + "x"}}).status, 401);
      EXPECT_NE(testing::Fetch(port, route.method, target, {{"X-Transcoder-Key", token}}).status, 401);
    } else {
      EXPECT_EQ(none.headers.count("www-authenticate") ? none.headers.at("www-authenticate") : "", "Bearer");
      EXPECT_NE(none.body.find("AuthenticationRequired"), std::string::npos) << none.body;
    }
    const auto wrong = testing::Fetch(port, route.method, target, {{"Authorization", "Bearer " + token + "x"}});
    EXPECT_EQ(wrong.status, 401) << "a wrong token";
    const auto other_scheme = testing::Fetch(port, route.method, target, {{"Authorization", "Basic " + token}});
    EXPECT_EQ(other_scheme.status, 401) << "the token under another scheme";
    const auto right = testing::Fetch(port, route.method, target, {{"Authorization", "Bearer " + token}});
    EXPECT_NE(right.status, 401) << "the right token";
    EXPECT_NE(right.status, 403) << "the right token";
    EXPECT_LT(right.status, 500) << right.body;
  }
  EXPECT_GT(guarded, 10);
  EXPECT_EQ(process.Stop(), 0);
}

}  // namespace
}  // namespace plyr
