#include <sys/stat.h>

#include <gtest/gtest.h>

#include "common/admin_token.h"
#include "common/http_message.h"
#include "tests/support/process.h"

namespace plyr {
namespace {

TEST(AdminTokenTest, ConfiguredTokenWins) {
  testing::TempDir dir;
  auto token = ResolveAdminToken("configured-token-123", dir.path());
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->value, "configured-token-123");
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "admin-token"));
}

TEST(AdminTokenTest, GeneratedOnceWithOwnerOnlyPermissions) {
  testing::TempDir dir;
  auto first = ResolveAdminToken("", dir.path());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_GE(first->value.size(), 40u);
  struct stat st{};
  ASSERT_EQ(::stat((dir.path() / "admin-token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = ResolveAdminToken("", dir.path());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(first->value, second->value);
}

TEST(AdminTokenTest, RefusesATokenFileOthersCanRead) {
  testing::TempDir dir;
  ASSERT_TRUE(ResolveAdminToken("", dir.path()).ok());
  ::chmod((dir.path() / "admin-token").c_str(), 0644);
  auto refused = ResolveAdminToken("", dir.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("chmod 600"), std::string::npos) << refused.status().message();
}

TEST(ConstantTimeEqualsTest, ComparesWholeValues) {
  EXPECT_TRUE(ConstantTimeEquals("secret-token", "secret-token"));
  EXPECT_FALSE(ConstantTimeEquals("secret-token", "secret-tokeN"));
  EXPECT_FALSE(ConstantTimeEquals("secret-token", "secret-token-longer"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

}  // namespace
}  // namespace plyr
