// The plyr-core command line as a user meets it: mistakes get a message that names them.
#include <fstream>
#include <sstream>
#include <string>

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include "common/sqlite_db.h"
#include "tests/support/pg_test_server.h"
#include "tests/support/process.h"
#include "tests/support/s3_test_server.h"
#include "tests/support/test_http_client.h"

namespace plyr::testing {
namespace {

TEST(ServeCommand, AnUnknownOptionIsNamedEvenWhenAValueFollowsIt) {
  std::string out;
  EXPECT_NE(PlyrProcess::RunToCompletion({"serve", "streamer", "--no-such-flag", "http://127.0.0.1:1"}, &out), 0);
  EXPECT_NE(out.find("--no-such-flag"), std::string::npos) << out;
  EXPECT_EQ(out.find("is not a service"), std::string::npos) << out;
}

TEST(ServeCommand, AnUnknownServiceIsNamedWithTheKnownOnes) {
  std::string out;
  EXPECT_NE(PlyrProcess::RunToCompletion({"serve", "jukebox"}, &out), 0);
  EXPECT_NE(out.find("'jukebox' is not a service (streamer, labeler, fingerprint, transcoder)"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace plyr::testing

namespace plyr::testing {
namespace {

TEST(ServeCommand, HelpNeverShowsSecretsFromTheConfigFile) {
  TempDir dir;
  const auto config = dir.path() / "plyr.toml";
  std::ofstream(config) << "admin_token = \"secret-admin-token-1234567890\"\n"
                        << "[labeler]\nsigning_key = \"secret-signing-key-abcdef\"\n"
                        << "[transcoder]\nstreamer_token = \"secret-streamer-token-xyz\"\n"
                        << "callback_key = \"secret-callback-key-xyz\"\ndrop_in_key = \"secret-drop-in-key-xyz\"\n"
                        << "listen = \"127.0.0.1:9999\"\n";
  std::string out;
  PlyrProcess::RunToCompletion({"serve", "--config", config.string(), "--help"}, &out);
  EXPECT_NE(out.find("--transcoder-callback-key"), std::string::npos) << out;
  EXPECT_NE(out.find("127.0.0.1:9999"), std::string::npos) << "other file values still show: " << out;
  for (const char* secret : {"secret-admin-token", "secret-signing-key", "secret-streamer-token", "secret-callback-key",
                             "secret-drop-in-key"}) {
    EXPECT_EQ(out.find(secret), std::string::npos) << secret << " shown by --help";
  }
}

}  // namespace
}  // namespace plyr::testing

namespace plyr::testing {
namespace {

TEST(PlyrCoreCommand, VersionPrintsTheVersionAndExitsZero) {
  std::string out;
  EXPECT_EQ(PlyrProcess::RunToCompletion({"--version"}, &out), 0);
  EXPECT_EQ(out.rfind("plyr-core ", 0), 0u) << out;
}

TEST(ServeCommand, EveryBadSettingIsOneClearLineAndExitStatusTwo) {
  TempDir dir;
  const auto config = dir.path() / "plyr.toml";
  const std::string data = (dir.path() / "data").string();
  struct Case {
    std::string file;                 // the config file's text, or empty for none
    std::vector<std::string> args;    // after `serve streamer --data DIR`
    std::string said;                 // a piece of the message
  };
  const std::vector<Case> cases = {
      {"[http]\nio_timeout_ms = -5\n", {}, "http.io_timeout_ms: --http-io-timeout-ms: must be 0 or more, not -5"},
      {"[http]\nio_timeout_ms = \"soon\"\n", {}, "http.io_timeout_ms: must be a whole number"},
      {"[streamer]\nlisten = 8410\n", {}, "streamer.listen: must be a string"},
      {"", {"--threads", "many"}, "--threads: 'many' is not a number"},
      {"", {"--streamer-listen", "localhost"}, "streamer.listen: \"localhost\" is not host:port"},
      {"", {"--streamer-listen", "localhost:1"}, "streamer.listen: the host of \"localhost:1\" is not an IP address"},
      {"admin_token = \"short\"\n", {}, "at least 24 characters"},
      {"", {"--http-trusted-proxies", "10.0.0.0/33"}, "not an IP address or network: 10.0.0.0/33"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"serve", "streamer", "--data", data};
    if (!c.file.empty()) {
      std::ofstream(config, std::ios::trunc) << c.file;
      args.insert(args.begin(), {"--config", config.string()});
    }
    args.insert(args.end(), c.args.begin(), c.args.end());
    std::string out;
    EXPECT_EQ(PlyrProcess::RunToCompletion(args, &out), 2) << c.said << ": " << out;
    EXPECT_NE(out.find(c.said), std::string::npos) << out;
  }
}

TEST(ServeCommand, AnUnknownKeyOfTheConfigFileIsAWarningThatNamesIt) {
  TempDir dir;
  const auto config = dir.path() / "plyr.toml";
  std::ofstream(config) << "[streamer]\nlisen = \"127.0.0.1:1\"\n";
  std::string out;
  PlyrProcess::RunToCompletion({"--config", config.string(), "serve", "--help"}, &out);
  EXPECT_NE(out.find("unknown key 'streamer.lisen'"), std::string::npos) << out;
}

TEST(ServeCommand, TheJsonLogFormatWritesOneObjectALine) {
  TempDir dir;
  std::string out;
  EXPECT_EQ(PlyrProcess::RunToCompletion({"serve", "streamer", "--log-format", "json", "--data",
                                          (dir.path() / "data").string(), "--streamer-listen", "localhost:1"},
                                         &out),
            2);
  std::size_t lines = 0;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    const boost::json::value parsed = boost::json::parse(line);  // throws, failing the test, unless JSON
    ASSERT_TRUE(parsed.is_object()) << line;
    ++lines;
  }
  EXPECT_GE(lines, 1u);
  EXPECT_NE(out.find(R"("level":"critical")"), std::string::npos) << out;
}

}  // namespace
}  // namespace plyr::testing

namespace plyr::testing {
namespace {

TEST(MigrateCommand, BringsEveryStoreToThisBuildAndRefusesADowngrade) {
  TempDir dir;
  const std::string data = (dir.path() / "data").string();
  std::string out;
  ASSERT_EQ(PlyrProcess::RunToCompletion({"migrate", "--data", data}, &out), 0) << out;
  for (const char* store : {"streamer.catalog", "labeler.labels", "transcoder.jobs", "fingerprint.references"}) {
    EXPECT_NE(out.find(std::string(store) + " ("), std::string::npos) << out;
  }
  EXPECT_NE(out.find("version 0 -> 1"), std::string::npos) << out;
  ASSERT_EQ(PlyrProcess::RunToCompletion({"migrate", "--data", data}, &out), 0) << out;
  EXPECT_EQ(out.find("version 0 -> 1"), std::string::npos) << "nothing twice: " << out;

  // A database a newer build migrated further: refused, named, exit status 1.
  auto db = SqliteDb::Open(dir.path() / "data" / "transcoder" / "jobs.db");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Run("UPDATE schema_migrations SET version = 9 WHERE store = 'transcoder.jobs'").ok());
  ASSERT_EQ(PlyrProcess::RunToCompletion({"migrate", "--data", data}, &out), 1) << out;
  EXPECT_NE(out.find("transcoder.jobs schema is at version 9, newer than this build's "), std::string::npos) << out;
  // And the service refuses to start on it, rather than write into a schema it does not know.
  EXPECT_EQ(PlyrProcess::RunToCompletion({"serve", "transcoder", "--data", data, "--transcoder-listen", "127.0.0.1:0"},
                                         &out),
            1)
      << out;
  EXPECT_NE(out.find("newer than this build's"), std::string::npos) << out;
}

TEST(MigrateCommand, MigratesThePostgresStoresWhenADatabaseIsNamed) {
  const std::string url = FreshPgDatabase();
  ASSERT_FALSE(url.empty());
  TempDir dir;
  std::string out;
  ASSERT_EQ(PlyrProcess::RunToCompletion({"migrate", "--data", (dir.path() / "data").string(), "--database-url", url},
                                         &out),
            0)
      << out;
  for (const char* store : {"streamer.catalog", "labeler.labels", "transcoder.jobs", "fingerprint.references"}) {
    EXPECT_NE(out.find(std::string(store) + " (PostgreSQL): version 0 -> "), std::string::npos) << out;
  }
}

// An embedded install (SQLite, blobs in the data folder) moved to PostgreSQL and an object store
// with `migrate --copy`: the same tracks play from the new home, gates and all.
TEST(MigrateCommand, CopyMovesAnEmbeddedInstallToPostgresAndTheStore) {
  const std::string url = FreshPgDatabase();
  ASSERT_FALSE(url.empty());
  S3TestServer* store = SharedS3Server();
  ASSERT_NE(store, nullptr);
  TempDir dir;
  const std::string data = (dir.path() / "data").string();
  const std::string token(40, 't');
  const Headers admin = {{"Authorization", "Bearer " + token}};
  const std::string bytes(300'000, 'x');
  std::string id;
  {
    PlyrProcess embedded(dir.path() / "data");
    ASSERT_TRUE(embedded.StartServe({"streamer", "labeler", "--admin-token", token, "--labeler-did",
                                     "did:plc:ar7c4by46qjdydhdevvrndac"}))
        << embedded.log();
    Headers json = admin;
    json.emplace_back("Content-Type", "application/json");
    for (int i = 0; i < 2; ++i) {
      ASSERT_EQ(Fetch(embedded.port("labeler"), "POST", "/v1/labels", json,
                      R"({"labels":[{"uri":"at://did:plc:artist/fm.plyr.track/)" + std::to_string(i) +
                          R"(","val":"spam"}]})")
                    .status,
                200);
    }
    auto uploaded = Fetch(embedded.port("streamer"), "PUT", "/v1/files", admin, bytes);
    ASSERT_EQ(uploaded.status, 201) << uploaded.body;
    id = std::string(boost::json::parse(uploaded.body).at("file_id").as_string());
    ASSERT_EQ(Fetch(embedded.port("streamer"), "PUT", "/v1/tracks/" + id, admin,
                    R"({"owner_did":"did:plc:artist","gate":"any"})")
                  .status,
              200);
    ASSERT_EQ(embedded.Stop(), 0);
  }
  std::ofstream(dir.path() / "secret") << S3TestServer::kSecretAccessKey << "\n";
  const std::vector<std::string> storage = {
      "--storage-s3-endpoint", store->endpoint(), "--storage-s3-bucket", store->bucket(), "--storage-s3-region",
      "us-east-1", "--storage-s3-access-key-id", S3TestServer::kAccessKeyId, "--storage-s3-secret-access-key-file",
      (dir.path() / "secret").string(), "--storage-s3-prefix", "moved/"};
  std::vector<std::string> copy = {"migrate", "--data", data, "--database-url", url, "--copy"};
  copy.insert(copy.end(), storage.begin(), storage.end());
  std::string out;
  ASSERT_EQ(PlyrProcess::RunToCompletion(copy, &out), 0) << out;
  EXPECT_NE(out.find("streamer.catalog: copied 1 files and 1 tracks"), std::string::npos) << out;
  EXPECT_NE(out.find("streamer blobs: 1 uploaded"), std::string::npos) << out;
  EXPECT_NE(out.find("labeler.labels: copied 2 labels (head seq 2)"), std::string::npos) << out;
  EXPECT_EQ(out.find("S3RVER\n"), std::string::npos) << "no secret in the output";
  // Twice would double what the database holds: refused.
  EXPECT_EQ(PlyrProcess::RunToCompletion(copy, &out), 1) << out;
  EXPECT_NE(out.find("fills an empty database only"), std::string::npos) << out;

  PlyrProcess moved(dir.path() / "elsewhere");
  std::vector<std::string> serve = {"streamer", "labeler", "--admin-token", token, "--database-url", url,
                                    "--labeler-did", "did:plc:ar7c4by46qjdydhdevvrndac"};
  serve.insert(serve.end(), storage.begin(), storage.end());
  ASSERT_TRUE(moved.StartServe(serve)) << moved.log();
  EXPECT_EQ(Fetch(moved.port("streamer"), "GET", "/audio/" + id).status, 401) << "the gate came along";
  auto whole = Fetch(moved.port("streamer"), "GET", "/v1/files/" + id, admin);
  EXPECT_EQ(whole.status, 200);
  EXPECT_TRUE(whole.body == bytes);
  // The labels kept their seqs, and the next one follows them.
  auto labels = Fetch(moved.port("labeler"), "GET", "/xrpc/com.atproto.label.queryLabels?uriPatterns=*");
  EXPECT_NE(labels.body.find("fm.plyr.track/1"), std::string::npos) << labels.body;
  EXPECT_NE(labels.body.find(R"("cursor":"2")"), std::string::npos) << labels.body;
}

}  // namespace
}  // namespace plyr::testing
