// The copyright pipeline end to end, every part real: one plyr-core process serving the streamer,
// the labeler, the fingerprint service and the transcoder. A work is registered with the
// fingerprint service; an upload that contains it goes through a transcoder job, which
// fingerprints the decode it already has, matches it over HTTP, and has the labeler sign a label,
// which appears in queryLabels and on subscribeLabels.
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/media_test_util.h"
#include "tests/support/process.h"
#include "tests/support/test_http_client.h"
#include "tests/support/test_ws_client.h"

namespace plyr::testing {
namespace {

TEST(CopyrightPipelineTest, AnUploadHoldingARegisteredWorkIsFlaggedAndLabelled) {
  TempDir dir;
  PlyrProcess plyr(dir.path());
  ASSERT_TRUE(plyr.StartServe({"--transcoder-label-flagged", "true"})) << plyr.log();
  const Headers auth = {{"Authorization", "Bearer " + plyr.admin_token()}};

  const auto work = MakeMelody(21, 60, "registered-work.flac");
  auto registered = Fetch(plyr.port("fingerprint"), "POST", "/v1/references?title=Hit&artist=Someone", auth,
                          ReadBytes(work), std::chrono::seconds(30));
  ASSERT_EQ(registered.status, 201) << registered.body;
  const std::string reference_id = JsonStr(ParseJson(registered.body), {"id"});

  // 12 s of an unrelated melody, then 40 s of the work from its 10th second.
  const auto other = MakeMelody(22, 12, "other-work.flac");
  const auto upload = MakeMedia("upload.flac", {"-i", other.string(), "-ss", "10", "-t", "40", "-i", work.string(),
                                                "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1"});
  const std::string uri = "at://did:plc:uploader/fm.plyr.track/3kcopy";
  auto submitted = Fetch(plyr.port("transcoder"), "POST",
                         "/v1/jobs?owner_did=did%3Aplc%3Auploader&renditions=opus-64&track_uri=" + UrlEncode(uri), auth,
                         ReadBytes(upload), std::chrono::seconds(30));
  ASSERT_EQ(submitted.status, 202) << submitted.body;
  const std::string job_id = JsonStr(ParseJson(submitted.body), {"id"});

  boost::json::value job;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < deadline) {
    job = ParseJson(Fetch(plyr.port("transcoder"), "GET", "/v1/jobs/" + job_id, auth).body);
    const std::string state = JsonStr(job, {"state"});
    if (state == "done" || state == "failed" || state == "cancelled") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);

  const boost::json::value* copyright = JsonAt(job, {"result", "copyright"});
  ASSERT_TRUE(copyright && copyright->is_object()) << boost::json::serialize(job);
  ASSERT_TRUE(JsonAt(*copyright, {"is_flagged"}) && JsonAt(*copyright, {"is_flagged"})->as_bool())
      << boost::json::serialize(*copyright);
  const auto& matches = JsonAt(*copyright, {"matches"})->as_array();
  ASSERT_EQ(matches.size(), 1u) << boost::json::serialize(*copyright);
  EXPECT_EQ(JsonStr(matches[0], {"reference_id"}), reference_id);
  EXPECT_EQ(JsonStr(matches[0], {"title"}), "Hit");
  // The work starts 12 s into the upload (to a window, 5 s) and 10 s into itself.
  EXPECT_NEAR(JsonNum(matches[0], {"query_offset_s"}), 12, 5.5);
  EXPECT_NEAR(JsonNum(matches[0], {"reference_offset_s"}) - JsonNum(matches[0], {"query_offset_s"}), 10 - 12, 1.5);
  EXPECT_GT(JsonNum(matches[0], {"duration_s"}), 25);
  EXPECT_EQ(JsonStr(*copyright, {"dominant_match"}), "Someone - Hit");
  EXPECT_EQ(JsonStr(*copyright, {"label", "val"}), "copyright-violation");
  const double seq = JsonNum(*copyright, {"label", "seq"});
  EXPECT_GE(seq, 1);

  // The labeler signed it: in queryLabels, and on the stream.
  auto labels = Fetch(plyr.port("labeler"), "GET", "/xrpc/com.atproto.label.queryLabels?uriPatterns=" + UrlEncode(uri));
  ASSERT_EQ(labels.status, 200) << labels.body;
  const boost::json::value label_doc = ParseJson(labels.body);
  ASSERT_TRUE(JsonAt(label_doc, {"labels"}) && JsonAt(label_doc, {"labels"})->is_array()) << labels.body;
  const auto& list = JsonAt(label_doc, {"labels"})->as_array();
  ASSERT_EQ(list.size(), 1u) << labels.body;
  EXPECT_EQ(JsonStr(list[0], {"val"}), "copyright-violation");
  EXPECT_EQ(JsonStr(list[0], {"uri"}), uri);
  EXPECT_NE(JsonAt(list[0], {"sig"}), nullptr);

  std::string error;
  auto ws = WsClient::Connect(plyr.port("labeler"), "/xrpc/com.atproto.label.subscribeLabels?cursor=0", &error);
  ASSERT_TRUE(ws) << error;
  WsMessage message;
  ASSERT_EQ(ws->Read(message, std::chrono::seconds(5)), WsClient::Status::kMessage);
  EXPECT_EQ(message.opcode, 2);
  EXPECT_NE(message.payload.find(uri), std::string::npos);
  EXPECT_NE(message.payload.find("copyright-violation"), std::string::npos);
}

}  // namespace
}  // namespace plyr::testing
