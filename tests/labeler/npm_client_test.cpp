// The labeler judged by the ATProto ecosystem's own client libraries rather than by our encoder:
// tests/labeler/npm/verify-labeler.mjs resolves the did:web with @atproto/identity, pages
// queryLabels through @atproto/api (Lexicon-validated), follows subscribeLabels with
// @atproto/xrpc-server's Subscription, and verifies every signature with @atproto/crypto and
// @atcute/crypto. This test starts the real binary, emits a varied set of labels and runs it.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "tests/support/process.h"
#include "tests/support/test_http_client.h"

#ifndef PLYR_NPM_DIR
#error "PLYR_NPM_DIR must name tests/labeler/npm (tests/CMakeLists.txt defines it)"
#endif

namespace plyr::testing {
namespace {

namespace fs = std::filesystem;
using boost::json::array;
using boost::json::object;

constexpr const char* kCid = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm";
constexpr const char* kAccount = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
constexpr int kTotalLabels = 300;

std::string TrackUri(int n) { return std::string("at://") + kAccount + "/fm.plyr.track/" + std::to_string(n); }

// One label of each shape a consumer has to accept and verify.
array VariedLabels() {
  const std::string long_ascii(128, 'x');  // the Lexicon's maxLength, which counts UTF-8 bytes
  std::string long_utf8 = "label-";
  while (long_utf8.size() < 128) long_utf8 += "\xc3\xa9";  // U+00E9: 128 bytes, 67 characters
  return array{
      object{{"uri", TrackUri(1)}, {"val", "copyright-violation"}},
      object{{"uri", TrackUri(2)}, {"val", "spam"}, {"cid", kCid}},
      object{{"uri", TrackUri(3)}, {"val", "porn"}, {"exp", "2099-01-01T00:00:00.000Z"}},
      object{{"uri", TrackUri(4)}, {"val", "sexual"}, {"exp", "2001-01-01T00:00:00.000Z"}},  // already expired
      object{{"uri", TrackUri(5)}, {"val", "nudity"}, {"exp", "2099-06-01T12:00:00.000+02:00"}},
      object{{"uri", kAccount}, {"val", "!hide"}},  // an account: a bare DID
      object{{"uri", "did:web:example.com"}, {"val", "!warn"}},
      object{{"uri", "at://alice.example.com/app.bsky.feed.post/3l3pte3p2e325"}, {"val", "spam"}},  // handle authority
      object{{"uri", TrackUri(6)}, {"val", long_ascii}},
      object{{"uri", TrackUri(7)}, {"val", long_utf8}},
      object{{"uri", TrackUri(1)}, {"val", "copyright-violation"}, {"neg", true}},
      object{{"uri", TrackUri(2)}, {"val", "spam"}, {"cid", kCid}, {"neg", true}},
  };
}

class LabelerNpmClient : public ::testing::Test {
 protected:
  void SetUp() override {
    // Fail, not skip: without the packages this test would prove nothing.
    ASSERT_TRUE(fs::exists(npm_dir_ / "node_modules"))
        << "the npm client libraries are not installed: run `npm ci` in " << npm_dir_.string()
        << " (scripts/test.sh does it before ctest)";
    process_ = std::make_unique<PlyrProcess>(dir_.path() / "data");
  }

  // Starts the labeler with no --labeler-did, so its DID is the did:web of its own listener and
  // the client resolves it through /.well-known/did.json like any did:web.
  void Start() {
    ASSERT_TRUE(process_->StartServe({"labeler"})) << process_->log();
    port_ = process_->port("labeler");
  }

  // POSTs a batch and returns how many labels the labeler stored.
  std::size_t Emit(const array& labels) {
    auto r = Fetch(port_, "POST", "/v1/labels",
                   {{"Authorization", "Bearer " + process_->admin_token()}, {"Content-Type", "application/json"}},
                   boost::json::serialize(object{{"labels", labels}}));
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return 0;
    return boost::json::parse(r.body).as_object().at("labels").as_array().size();
  }

  // The varied labels, a negation of an earlier batch's label, then plain batches up to 300.
  std::size_t EmitAll() {
    std::size_t emitted = Emit(VariedLabels());
    emitted += Emit(array{object{{"uri", TrackUri(3)}, {"val", "porn"}, {"neg", true}}});
    const char* vals[] = {"spam", "porn", "copyright-violation", "!warn"};
    for (int n = 100; emitted < kTotalLabels;) {
      array batch;
      for (; batch.size() < 100 && emitted + batch.size() < kTotalLabels; ++n) {
        batch.push_back(object{{"uri", TrackUri(n)}, {"val", vals[n % 4]}});
      }
      const std::size_t stored = Emit(batch);
      emitted += stored;
      if (stored != batch.size()) break;
    }
    return emitted;
  }

  // Runs the npm client against the labeler; it exits 0 only if every check held.
  void Verify(std::size_t expect) {
    std::string out;
    const int rc = PlyrProcess::RunCommand(
        {"/usr/bin/env", "node", (npm_dir_ / "verify-labeler.mjs").string(), "--url",
         "http://127.0.0.1:" + std::to_string(port_), "--expect", std::to_string(expect)},
        &out, std::chrono::seconds(90));
    if (rc == 127) FAIL() << "node is not installed (scripts/install-deps.sh installs it)\n" << out;
    EXPECT_EQ(rc, 0) << "verify-labeler.mjs failed (-1: killed after 90 s):\n" << out;
    if (rc == 0) std::cout << out;  // the summary of what was verified, for ctest -V
  }

  const fs::path npm_dir_ = PLYR_NPM_DIR;
  TempDir dir_;
  std::unique_ptr<PlyrProcess> process_;
  unsigned short port_ = 0;
};

TEST_F(LabelerNpmClient, K256LabelsVerifyWithTheAtprotoAndAtcuteClients) {
  Start();  // the first start creates a k256 key
  if (HasFatalFailure()) return;
  const std::size_t emitted = EmitAll();
  ASSERT_EQ(emitted, static_cast<std::size_t>(kTotalLabels));
  Verify(emitted);
}

TEST_F(LabelerNpmClient, P256LabelsVerifyWithTheAtprotoAndAtcuteClients) {
  // p256 goes through OpenSSL, whose S values are normalised by us: the clients require low S.
  std::string out;
  ASSERT_EQ(PlyrProcess::RunToCompletion(
                {"labeler", "keygen", "--data", process_->data_dir().string(), "--curve", "p256"}, &out),
            0)
      << out;
  Start();
  if (HasFatalFailure()) return;
  const std::size_t emitted = EmitAll();
  ASSERT_EQ(emitted, static_cast<std::size_t>(kTotalLabels));
  Verify(emitted);
}

}  // namespace
}  // namespace plyr::testing
