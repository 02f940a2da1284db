// The fingerprint service with its references on PostgreSQL (database.url): a throw-away cluster
// (tests/support/pg_test_server.h) and the real binary on loopback.
#include <chrono>
#include <iostream>
#include <thread>
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

// Polls `check` every 50 ms until it holds or `bound` passes.
template <typename Check>
bool Eventually(Check check, std::chrono::milliseconds bound = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(FingerprintOnPostgresTest, TwoInstancesSeeEachOthersReferencesPromptly) {
  PgTestServer pg;
  ASSERT_TRUE(pg.Start()) << pg.error();
  ASSERT_TRUE(pg.CreateDatabase("shared")) << pg.error();
  const std::string url = pg.url("shared");
  TempDir a_dir, b_dir;
  PlyrProcess a(a_dir.path()), b(b_dir.path());
  ASSERT_TRUE(a.StartServe({"fingerprint", "--database-url", url})) << a.log();
  ASSERT_TRUE(b.StartServe({"fingerprint", "--database-url", url})) << b.log();
  const auto work = MakeMelody(22, 40, "pg-w22.flac");
  const std::string excerpt = ReadBytes(
      MakeMedia("pg-w22-excerpt.mp3", {"-ss", "15", "-t", "10", "-i", work.string(), "-c:a", "libmp3lame", "-b:a", "64k"}));
  const auto match_on_b = [&] {
    auto r = Fetch(b.port("fingerprint"), "POST", "/v1/match", {{"Authorization", "Bearer " + b.admin_token()}},
                   excerpt, std::chrono::seconds(60));
    return r.status == 200 ? ParseJson(r.body) : boost::json::value();
  };
  const auto b_finds = [&](const std::string& id) {
    const auto answer = match_on_b();
    const auto* matches = JsonAt(answer, {"matches"});
    if (matches == nullptr || !matches->is_array()) return false;
    for (const auto& m : matches->as_array()) {
      if (JsonStr(m, {"reference_id"}) == id) return true;
    }
    return false;
  };

  // Registered through A: B matches it without a restart.
  auto registered = Fetch(a.port("fingerprint"), "POST", "/v1/references?title=Shared&artist=Test",
                          {{"Authorization", "Bearer " + a.admin_token()}}, ReadBytes(work), std::chrono::seconds(60));
  ASSERT_EQ(registered.status, 201) << registered.body;
  const std::string id = JsonStr(ParseJson(registered.body), {"id"});
  const auto registered_at = std::chrono::steady_clock::now();
  EXPECT_TRUE(Eventually([&] { return b_finds(id); })) << b.log();
  std::cout << "seen by the other instance after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - registered_at)
                   .count()
            << " ms\n";

  // Deleted through A: B stops matching it.
  EXPECT_EQ(Fetch(a.port("fingerprint"), "DELETE", "/v1/references/" + id,
                  {{"Authorization", "Bearer " + a.admin_token()}})
                .status,
            200);
  EXPECT_TRUE(Eventually([&] { return !b_finds(id); })) << b.log();

  // What B missed while it was down is caught up when it comes back: registered through A meanwhile.
  b.Kill();
  auto again = Fetch(a.port("fingerprint"), "POST", "/v1/references?title=Again&artist=Test",
                     {{"Authorization", "Bearer " + a.admin_token()}}, ReadBytes(work), std::chrono::seconds(60));
  ASSERT_EQ(again.status, 201) << again.body;
  const std::string again_id = JsonStr(ParseJson(again.body), {"id"});
  PlyrProcess b2(b_dir.path());
  ASSERT_TRUE(b2.StartServe({"fingerprint", "--database-url", url})) << b2.log();
  auto r = Fetch(b2.port("fingerprint"), "POST", "/v1/match", {{"Authorization", "Bearer " + b2.admin_token()}},
                 excerpt, std::chrono::seconds(60));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(again_id), std::string::npos) << r.body;
}

TEST(FingerprintOnPostgresTest, BadDatabaseSettingsStopTheStartWithOneClearLine) {
  TempDir dir;
  std::string out;
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
