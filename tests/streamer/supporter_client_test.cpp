#include "streamer/supporter_client.h"

#include <gtest/gtest.h>

namespace plyr::streamer {
namespace {

// The supporter URL must be https; plain http only where it cannot leave the machine.
TEST(SupporterClientTest, PlainHttpOnlyOnLoopback) {
  HttpClient http;
  auto accepted = [&](const std::string& url) {
    SupporterClientOptions options;
    options.base_url = url;
    return SupporterClient::Create(http, options).ok();
  };
  for (const char* url : {"https://atprotofans.com", "https://127.example.com", "http://127.0.0.1:8080",
                          "http://127.1.2.3", "http://[::1]:9000", "http://localhost:1", "http://LOCALHOST"}) {
    EXPECT_TRUE(accepted(url)) << url;
  }
  for (const char* url : {"http://atprotofans.com", "http://127.example.com", "http://127.0.0.1.nip.io",
                          "http://128.0.0.1", "http://[::2]", "http://localhost.example.com", "ftp://127.0.0.1",
                          "not a url"}) {
    EXPECT_FALSE(accepted(url)) << url;
  }
}

}  // namespace
}  // namespace plyr::streamer
