#include "common/trusted_proxies.h"

#include <gtest/gtest.h>

namespace plyr {
namespace {

namespace ip = boost::asio::ip;

ip::address A(const char* text) { return ip::make_address(text); }

TEST(TrustedProxiesTest, AddressesAndNetworksOfBothFamilies) {
  auto proxies = TrustedProxies::Parse("127.0.0.1, 10.0.0.0/8 ,::1,fd00::/8");
  ASSERT_TRUE(proxies.ok()) << proxies.status().ToString();
  for (const char* in : {"127.0.0.1", "10.1.2.3", "::1", "fd12::5", "::ffff:10.9.9.9"}) {
    EXPECT_TRUE(proxies->Contains(A(in))) << in;
  }
  for (const char* out : {"127.0.0.2", "11.0.0.1", "::2", "fe80::1", "203.0.113.7"}) {
    EXPECT_FALSE(proxies->Contains(A(out))) << out;
  }
  EXPECT_TRUE(TrustedProxies::Parse("").value().empty());
  for (const char* bad : {"localhost", "10.0.0.0/33", "1.2.3", "fd00::/129", "10.0.0.1,nope"}) {
    auto refused = TrustedProxies::Parse(bad);
    EXPECT_FALSE(refused.ok()) << bad;
  }
}

TEST(TrustedProxiesTest, TheClientIsTheFirstUntrustedAddressFromTheRight) {
  const auto proxies = TrustedProxies::Parse("10.0.0.0/8").value();
  // The client wrote a false entry first; the proxies appended what they saw.
  EXPECT_EQ(proxies.ClientAddress(A("10.0.0.1"), {"6.6.6.6, 203.0.113.7, 10.0.0.2"}), A("203.0.113.7"));
  EXPECT_EQ(proxies.ClientAddress(A("10.0.0.1"), {"6.6.6.6", "203.0.113.7"}), A("203.0.113.7"));
  // Not from a trusted proxy: the header is the client's own word, and ignored.
  EXPECT_EQ(proxies.ClientAddress(A("198.51.100.1"), {"203.0.113.7"}), A("198.51.100.1"));
  // Garbage ends the walk at the nearest address read; no header leaves the peer.
  EXPECT_EQ(proxies.ClientAddress(A("10.0.0.1"), {"not-an-ip, 10.0.0.3"}), A("10.0.0.3"));
  EXPECT_EQ(proxies.ClientAddress(A("10.0.0.1"), {}), A("10.0.0.1"));
  EXPECT_EQ(proxies.ClientAddress(A("10.0.0.1"), {"[2001:db8::7]"}), A("2001:db8::7"));
}

}  // namespace
}  // namespace plyr
