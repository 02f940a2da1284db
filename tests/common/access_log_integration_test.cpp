// The access log behind a reverse proxy, through the real binary: X-Forwarded-For is believed
// only from a configured trusted proxy.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/process.h"
#include "tests/support/test_http_client.h"

namespace plyr {
namespace {

TEST(TrustedProxiesTest, TheAccessLogNamesTheForwardedClientOnlyBehindATrustedProxy) {
  for (const bool trusted : {true, false}) {
    testing::TempDir dir;
    testing::PlyrProcess process(dir.path() / "data");
    std::vector<std::string> args = {"streamer"};
    if (trusted) args.insert(args.end(), {"--http-trusted-proxies", "127.0.0.1"});
    ASSERT_TRUE(process.StartServe(args)) << process.log();
    const auto answer = testing::Fetch(process.port("streamer"), "GET", "/health", {{"X-Forwarded-For", "203.0.113.7"}});
    EXPECT_EQ(answer.status, 200);
    EXPECT_EQ(process.Stop(), 0);  // flushes the log
    const std::string log = process.log();
    if (trusted) {
      EXPECT_NE(log.find("peer=203.0.113.7 method=GET target=\"/health\""), std::string::npos) << log;
      EXPECT_NE(log.find("via=127.0.0.1"), std::string::npos) << log;
    } else {
      EXPECT_NE(log.find("peer=127.0.0.1 method=GET target=\"/health\""), std::string::npos) << log;
      EXPECT_EQ(log.find("203.0.113.7"), std::string::npos) << log;
    }
  }
}

}  // namespace
}  // namespace plyr
