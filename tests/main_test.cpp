// The plyr-core command line as a user meets it: mistakes get a message that names them.
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
  EXPECT_NE(PlyrProcess::RunToCompletion({"serve", "fingerprint"}, &out), 0);
  EXPECT_NE(out.find("'fingerprint' is not a service (streamer, labeler, transcoder)"), std::string::npos) << out;
}

}  // namespace
}  // namespace plyr::testing
