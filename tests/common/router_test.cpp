#include <gtest/gtest.h>

#include <boost/url/parse.hpp>

#include "common/router.h"

namespace plyr {
namespace {

Handler Named(std::string name) {
  return [name](Request&) -> asio::awaitable<Response> {
    Response r;
    r.body = name;
    co_return r;
  };
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add(http::verb::get, "/audio/{file_id}", Named("audio"));
    router_.Add(http::verb::put, "/v1/tracks/{file_id}", Named("put"));
    router_.Add(http::verb::get, "/v1/tracks/{file_id}", Named("get"));
  }
  Router::Match Find(http::verb method, std::string_view target) {
    auto url = boost::urls::parse_origin_form(target);
    EXPECT_TRUE(url);
    return router_.Find(method, *url, params_);
  }
  Router router_;
  std::vector<std::pair<std::string, std::string>> params_;
};

TEST_F(RouterTest, MatchesAndDecodesParameters) {
  auto m = Find(http::verb::get, "/audio/0123456789abcdef?rendition=mp3-128");
  ASSERT_EQ(m.kind, Router::MatchKind::kFound);
  ASSERT_EQ(params_.size(), 1u);
  EXPECT_EQ(params_[0].first, "file_id");
  EXPECT_EQ(params_[0].second, "0123456789abcdef");
}

TEST_F(RouterTest, EncodedSlashStaysInsideOneParameter) {
  auto m = Find(http::verb::get, "/audio/..%2F..%2Fetc%2Fpasswd");
  ASSERT_EQ(m.kind, Router::MatchKind::kFound);
  EXPECT_EQ(params_[0].second, "../../etc/passwd");  // the handler's id check refuses it
}

TEST_F(RouterTest, DotSegmentsNeverMatchAShorterRoute) {
  EXPECT_EQ(Find(http::verb::get, "/audio/../v1/tracks/x").kind, Router::MatchKind::kNotFound);
  EXPECT_EQ(Find(http::verb::get, "/audio/a/b").kind, Router::MatchKind::kNotFound);
  EXPECT_EQ(Find(http::verb::get, "/audio/").kind, Router::MatchKind::kNotFound);
}

TEST_F(RouterTest, WrongMethodListsAllowed) {
  auto m = Find(http::verb::delete_, "/v1/tracks/abc");
  ASSERT_EQ(m.kind, Router::MatchKind::kMethodNotAllowed);
  EXPECT_NE(m.allow.find("PUT"), std::string::npos);
  EXPECT_NE(m.allow.find("GET"), std::string::npos);
}

TEST_F(RouterTest, HeadFallsBackToGet) {
  auto m = Find(http::verb::head, "/audio/0123456789abcdef");
  ASSERT_EQ(m.kind, Router::MatchKind::kFound);
  EXPECT_EQ(params_[0].second, "0123456789abcdef");
}

}  // namespace
}  // namespace plyr
