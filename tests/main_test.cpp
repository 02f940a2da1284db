// The plyr-core command line as a user meets it: mistakes get a message that names them.
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/process.h"

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
