// The fingerprint service with its references on PostgreSQL (database.url): a throw-away cluster
// (tests/support/pg_test_server.h) and the real binary on loopback.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/media_test_util.h"
#include "tests/support/pg_test_server.h"
#include "tests/support/process.h"
#include "tests/support/test_http_client.h"

namespace plyr::testing {
namespace {

TEST(FingerprintOnPostgresTest, ReferencesLiveInTheDatabaseNotTheDataFolder) {
  PgTestServer pg;
  ASSERT_TRUE(pg.Start()) << pg.error();
  ASSERT_TRUE(pg.CreateDatabase("fingerprint")) << pg.error();
  const std::string url = pg.url("fingerprint");
  const auto work = MakeMelody(21, 40, "pg-w21.flac");

  TempDir first_dir;
  auto first = std::make_unique<PlyrProcess>(first_dir.path());
  ASSERT_TRUE(first->StartServe({"fingerprint", "--database-url", url})) << first->log();
  const Headers auth = {{"Authorization", "Bearer " + first->admin_token()}};
  auto registered = Fetch(first->port("fingerprint"), "POST", "/v1/references?title=Pg&artist=Test", auth,
                          ReadBytes(work), std::chrono::seconds(60));
  ASSERT_EQ(registered.status, 201) << registered.body;
  const std::string id = JsonStr(ParseJson(registered.body), {"id"});
  EXPECT_EQ(first->log().find(url), std::string::npos) << "the URL (it may hold a password) is not logged";
  first->Kill();

  // Another process with an empty data folder of its own finds the reference and matches it.
  TempDir second_dir;
  PlyrProcess second(second_dir.path());
  ASSERT_TRUE(second.StartServe({"fingerprint", "--database-url", url})) << second.log();
  const Headers second_auth = {{"Authorization", "Bearer " + second.admin_token()}};
  EXPECT_EQ(Fetch(second.port("fingerprint"), "GET", "/v1/references/" + id, second_auth).status, 200);
  const auto excerpt = MakeMedia("pg-w21-excerpt.mp3", {"-ss", "12", "-t", "10", "-i", work.string(), "-c:a",
                                                        "libmp3lame", "-b:a", "64k"});
  auto matched = Fetch(second.port("fingerprint"), "POST", "/v1/match", second_auth, ReadBytes(excerpt),
                       std::chrono::seconds(60));
  ASSERT_EQ(matched.status, 200) << matched.body;
  EXPECT_NE(matched.body.find(id), std::string::npos) << matched.body;
  EXPECT_FALSE(std::filesystem::exists(second_dir.path() / "fingerprint" / "references.db"));
}

TEST(FingerprintOnPostgresTest, BadDatabaseSettingsStopTheStartWithOneClearLine) {
  TempDir dir;
  std::string out;
  EXPECT_EQ(PlyrProcess::RunToCompletion({"serve", "streamer", "--data", dir.path().string(), "--streamer-listen",
                                          "127.0.0.1:0", "--database-url", "postgres://u@127.0.0.1:1/x"},
                                         &out),
            2);
  EXPECT_NE(out.find("database.url: the streamer's track catalog runs on SQLite only"), std::string::npos) << out;
  EXPECT_EQ(PlyrProcess::RunToCompletion({"serve", "fingerprint", "--data", dir.path().string(), "--fingerprint-listen",
                                          "127.0.0.1:0", "--database-url", "postgres://u:hunter2@127.0.0.1:1/x"},
                                         &out),
            1);
  EXPECT_NE(out.find("cannot connect to PostgreSQL"), std::string::npos) << out;
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << "a password never reaches the log";
  EXPECT_EQ(PlyrProcess::RunToCompletion({"serve", "fingerprint", "--data", dir.path().string(), "--fingerprint-listen",
                                          "127.0.0.1:0", "--database-url", "postgres://u:hunter2@[oops/x"},
                                         &out),
            2);
  EXPECT_NE(out.find("database.url is not a PostgreSQL URL"), std::string::npos) << out;
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
  EXPECT_EQ(PlyrProcess::RunToCompletion({"serve", "fingerprint", "--data", dir.path().string(),
                                          "--database-connections", "0"},
                                         &out),
            2);
  EXPECT_NE(out.find("database.connections: must be 1 to 64"), std::string::npos) << out;
}

}  // namespace
}  // namespace plyr::testing
