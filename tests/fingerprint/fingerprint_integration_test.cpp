// The fingerprint service end to end: the real plyr-core binary on an OS-chosen loopback port,
// spoken to over HTTP, with works made by the ffmpeg CLI (two-voice melodies drawn from a seed,
// so each seed is a different piece of music). Every wait is bounded.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/media_test_util.h"
#include "tests/support/process.h"
#include "tests/support/test_http_client.h"

namespace plyr::testing {
namespace {

// `seconds` of `source` from `start`, as MP3 at 64 kbit/s (a re-encoded excerpt).
tfs::path Excerpt(const tfs::path& source, double start, double seconds, const std::string& name) {
  return MakeMedia(name, {"-ss", std::to_string(start), "-t", std::to_string(seconds), "-i", source.string(), "-c:a",
                          "libmp3lame", "-b:a", "64k"});
}

class FingerprintTest : public ::testing::Test {
 protected:
  void SetUp() override {
    process_ = std::make_unique<PlyrProcess>(dir_.path());
    ASSERT_TRUE(process_->StartServe({"fingerprint"})) << process_->log();
  }

  unsigned short port() const { return process_->port("fingerprint"); }
  Headers Auth(const std::string& content_type = "application/octet-stream") const {
    return {{"Authorization", "Bearer " + process_->admin_token()}, {"Content-Type", content_type}};
  }
  HttpResult Post(const std::string& target, const std::string& body,
                  const std::string& content_type = "application/octet-stream") {
    return Fetch(port(), "POST", target, Auth(content_type), body, std::chrono::seconds(60));
  }
  // Registers a file; returns the new reference's id.
  std::string Register(const tfs::path& file, const std::string& title, const std::string& extra = "") {
    auto r = Post("/v1/references?title=" + UrlEncode(title) + "&artist=Test%20Artist" + extra, ReadBytes(file));
    EXPECT_EQ(r.status, 201) << r.body;
    return JsonStr(ParseJson(r.body), {"id"});
  }
  boost::json::value Match(const tfs::path& file, const std::string& query = "") {
    auto r = Post("/v1/match" + query, ReadBytes(file));
    EXPECT_EQ(r.status, 200) << r.body;
    return ParseJson(r.body);
  }
  void Restart() {
    process_->Kill();
    process_ = std::make_unique<PlyrProcess>(dir_.path());
    ASSERT_TRUE(process_->StartServe({"fingerprint"})) << process_->log();
  }

  TempDir dir_;
  std::unique_ptr<PlyrProcess> process_;
};

const boost::json::array& Matches(const boost::json::value& answer) {
  static const boost::json::array empty;
  const auto* m = JsonAt(answer, {"matches"});
  return m && m->is_array() ? m->as_array() : empty;
}

TEST_F(FingerprintTest, AnExcerptIsFoundWithItsWorkAndOffsetAndFlagged) {
  const auto w1 = MakeMelody(1, 60, "w1.flac"), w2 = MakeMelody(2, 60, "w2.flac"), w3 = MakeMelody(3, 60, "w3.flac");
  Register(w1, "One");
  const std::string id2 = Register(w2, "Two", "&isrc=USRC17607839");
  Register(w3, "Three");
  ASSERT_TRUE(IsLowerHex(id2, 16)) << id2;

  const auto answer = Match(Excerpt(w2, 20, 10, "w2-20s.mp3"));
  ASSERT_EQ(Matches(answer).size(), 1u) << boost::json::serialize(answer);
  const auto& m = Matches(answer)[0];
  EXPECT_EQ(JsonStr(m, {"reference_id"}), id2);
  EXPECT_EQ(JsonStr(m, {"title"}), "Two");
  EXPECT_EQ(JsonStr(m, {"isrc"}), "USRC17607839");
  EXPECT_NEAR(JsonNum(m, {"reference_offset_s"}), 20, 1.0);
  EXPECT_NEAR(JsonNum(m, {"query_offset_s"}), 0, 1.0);
  EXPECT_GT(JsonNum(m, {"score"}), 0.6);
  EXPECT_TRUE(JsonAt(answer, {"is_flagged"})->as_bool());
  EXPECT_EQ(JsonNum(answer, {"dominant_match_pct"}), 100);
  EXPECT_EQ(JsonStr(answer, {"dominant_match"}), "Test Artist - Two");

  auto got = Fetch(port(), "GET", "/v1/references/" + id2, Auth());
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(JsonStr(ParseJson(got.body), {"title"}), "Two");
  auto list = Fetch(port(), "GET", "/v1/references?limit=2", Auth());
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(JsonAt(ParseJson(list.body), {"references"})->as_array().size(), 2u);
  EXPECT_EQ(JsonNum(ParseJson(Fetch(port(), "GET", "/v1/index", Auth()).body), {"references"}), 3);
}

TEST_F(FingerprintTest, AMixReturnsEachWorkAndAnOwnWorkIsASelfMatch) {
  const auto w4 = MakeMelody(4, 60, "w4.flac"), w5 = MakeMelody(5, 60, "w5.flac");
  const std::string id4 = Register(w4, "Four", "&owner_did=did%3Aplc%3Aowner4");
  const std::string id5 = Register(w5, "Five");
  const auto mix = MakeMedia("mix.mp3", {"-ss", "5", "-t", "25", "-i", w4.string(), "-ss", "30", "-t", "25", "-i",
                                         w5.string(), "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1", "-c:a",
                                         "libmp3lame", "-b:a", "128k"});
  const auto answer = Match(mix);
  ASSERT_EQ(Matches(answer).size(), 2u) << boost::json::serialize(answer);
  EXPECT_EQ(JsonStr(Matches(answer)[0], {"reference_id"}), id4);
  EXPECT_NEAR(JsonNum(Matches(answer)[0], {"reference_offset_s"}), 5, 1.5);
  EXPECT_EQ(JsonStr(Matches(answer)[0], {"owner_did"}), "did:plc:owner4");
  EXPECT_EQ(JsonStr(Matches(answer)[1], {"reference_id"}), id5);
  EXPECT_NEAR(JsonNum(Matches(answer)[1], {"reference_offset_s"}) - JsonNum(Matches(answer)[1], {"query_offset_s"}),
              30 - 25, 1.5);

  // The owner of work 4 uploading it: marked, and left out of the signals.
  const auto own = Match(Excerpt(w4, 10, 12, "w4-10s.mp3"), "?owner_did=did%3Aplc%3Aowner4");
  ASSERT_EQ(Matches(own).size(), 1u);
  EXPECT_TRUE(JsonAt(Matches(own)[0], {"self_match"})->as_bool());
  EXPECT_FALSE(JsonAt(own, {"is_flagged"})->as_bool());
}

TEST_F(FingerprintTest, TheSameWorkRegisteredTwiceIsAConflict) {
  const auto w6 = MakeMelody(6, 40, "w6.flac");
  const std::string id = Register(w6, "Six");
  auto again = Post("/v1/references?title=Six", ReadBytes(w6));
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(JsonStr(ParseJson(again.body), {"reference_id"}), id);
  // Another encoding of the same audio is the same work.
  const auto mp3 = MakeMelody(6, 40, "w6.mp3", {"-c:a", "libmp3lame", "-b:a", "128k"});
  auto encoded = Post("/v1/references?title=Six", ReadBytes(mp3));
  EXPECT_EQ(encoded.status, 409) << encoded.body;
  EXPECT_EQ(Post("/v1/references?title=Six&allow_duplicate=1", ReadBytes(mp3)).status, 201);
}

TEST_F(FingerprintTest, BadInputGetsAClearAnswer) {
  const auto w7 = MakeMelody(7, 40, "w7.flac");
  Register(w7, "Seven");
  const auto silence = MakeMedia("silence.wav", {"-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-t", "15"});
  const auto quiet = Match(silence);
  EXPECT_TRUE(Matches(quiet).empty());
  EXPECT_EQ(JsonNum(quiet, {"windows", "guarded"}), 1);
  EXPECT_FALSE(JsonAt(quiet, {"is_flagged"})->as_bool());
  const auto noise = MakeMedia("noise.wav", {"-f", "lavfi", "-i", "anoisesrc=color=white:seed=3", "-t", "15"});
  EXPECT_TRUE(Matches(Match(noise)).empty());

  const auto short_file = MakeMelody(8, 1, "one-second.flac");
  auto too_short = Post("/v1/match", ReadBytes(short_file));
  EXPECT_EQ(too_short.status, 422);
  EXPECT_EQ(JsonStr(ParseJson(too_short.body), {"error"}), "AudioTooShort");
  EXPECT_EQ(Post("/v1/fingerprint", ReadBytes(short_file)).status, 422);

  auto text = Post("/v1/match", "this is not audio, just some text that goes on for a while");
  EXPECT_EQ(text.status, 400) << text.body;
  EXPECT_FALSE(JsonStr(ParseJson(text.body), {"message"}).empty());
  EXPECT_EQ(Post("/v1/match", "").status, 400);
  const auto video = MakeMedia("video.mp4", {"-f", "lavfi", "-i", "testsrc=size=64x64:rate=5", "-t", "2"});
  EXPECT_EQ(Post("/v1/match", ReadBytes(video)).status, 400);
  auto corrupt = ReadBytes(MakeMelody(7, 40, "w7-corrupt.mp3", {"-c:a", "libmp3lame"}));
  for (std::size_t i = corrupt.size() / 3; i < corrupt.size() / 3 + 20000 && i < corrupt.size(); ++i) corrupt[i] = 'x';
  auto damaged = Post("/v1/match", corrupt);
  EXPECT_EQ(damaged.status, 200) << damaged.body;  // the damaged frames are skipped

  auto bad_print = Post("/v1/match", R"({"fingerprint": "AQAAnot-really"})", "application/json");
  EXPECT_EQ(bad_print.status, 400);
  EXPECT_EQ(JsonStr(ParseJson(bad_print.body), {"error"}), "InvalidFingerprint");
  EXPECT_EQ(Post("/v1/match", R"({"fingerprint": 12})", "application/json").status, 400);
  EXPECT_EQ(Post("/v1/match", "{not json", "application/json").status, 400);
  EXPECT_EQ(Post("/v1/references", R"({"title": "x"})", "application/json").status, 400);
  EXPECT_EQ(Post("/v1/references?title=Silence", ReadBytes(silence)).status, 422);

  EXPECT_EQ(Fetch(port(), "POST", "/v1/match", {}, ReadBytes(w7)).status, 401);
  EXPECT_EQ(Fetch(port(), "GET", "/v1/references/0123456789abcdef", Auth()).status, 404);
  EXPECT_EQ(Fetch(port(), "GET", "/v1/references/..%2F..%2Fetc", Auth()).status, 404);
  EXPECT_EQ(Fetch(port(), "DELETE", "/v1/references/0123456789abcdef", Auth()).status, 404);
  EXPECT_TRUE(process_->Running());
}

TEST_F(FingerprintTest, AFingerprintMatchesLikeItsAudioAndTheCommandLinePrintsIt) {
  const auto w9 = MakeMelody(9, 40, "w9.flac");
  const std::string id = Register(w9, "Nine");
  const auto excerpt = Excerpt(w9, 12, 15, "w9-12s.mp3");
  auto printed = Post("/v1/fingerprint", ReadBytes(excerpt));
  ASSERT_EQ(printed.status, 200) << printed.body;
  const std::string fingerprint = JsonStr(ParseJson(printed.body), {"fingerprint"});
  EXPECT_EQ(fingerprint.substr(0, 4), "AQAA");
  EXPECT_NEAR(JsonNum(ParseJson(printed.body), {"duration_s"}), 15, 0.2);

  std::string output;
  EXPECT_EQ(PlyrProcess::RunToCompletion({"fingerprint", excerpt.string()}, &output), 0) << output;
  EXPECT_NE(output.find("FINGERPRINT=" + fingerprint + "\n"), std::string::npos) << output;
  EXPECT_NE(output.find("DURATION=15"), std::string::npos) << output;
  const tfs::path text = dir_.path() / "notes.txt";
  WriteBytes(text, "not audio");
  EXPECT_EQ(PlyrProcess::RunToCompletion({"fingerprint", text.string()}, &output), 1);

  auto by_print = Post("/v1/match", R"({"fingerprint": ")" + fingerprint + R"("})", "application/json");
  ASSERT_EQ(by_print.status, 200) << by_print.body;
  ASSERT_EQ(Matches(ParseJson(by_print.body)).size(), 1u) << by_print.body;
  EXPECT_EQ(JsonStr(Matches(ParseJson(by_print.body))[0], {"reference_id"}), id);
  EXPECT_NEAR(JsonNum(Matches(ParseJson(by_print.body))[0], {"reference_offset_s"}), 12, 1.0);
}

TEST_F(FingerprintTest, ReferencesSurviveKill9AndADeleteIsFinalEvenMidMatch) {
  const auto w10 = MakeMelody(10, 60, "w10.flac"), w11 = MakeMelody(11, 60, "w11.flac");
  const std::string id10 = Register(w10, "Ten");
  const std::string id11 = Register(w11, "Eleven");
  Restart();  // kill -9, then start on the same data
  const auto q10 = Excerpt(w10, 30, 10, "w10-30s.mp3");
  ASSERT_EQ(Matches(Match(q10)).size(), 1u);

  // Delete work 10 while long matches run: every answer is whole, and afterwards it is gone.
  const auto long_query = MakeMedia("long.mp3", {"-stream_loop", "3", "-i", w10.string(), "-c:a", "libmp3lame"});
  std::atomic<int> ok_answers{0};
  std::vector<std::thread> matchers;
  for (int i = 0; i < 3; ++i) {
    matchers.emplace_back([&] {
      auto r = Fetch(port(), "POST", "/v1/match", Auth(), ReadBytes(long_query), std::chrono::seconds(60));
      if (r.status == 200 && JsonAt(ParseJson(r.body), {"matches"})) ++ok_answers;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Fetch(port(), "DELETE", "/v1/references/" + id10, Auth()).status, 200);
  for (auto& t : matchers) t.join();
  EXPECT_EQ(ok_answers.load(), 3);
  EXPECT_TRUE(Matches(Match(q10)).empty());

  Restart();
  EXPECT_EQ(Fetch(port(), "GET", "/v1/references/" + id10, Auth()).status, 404);
  EXPECT_EQ(Fetch(port(), "GET", "/v1/references/" + id11, Auth()).status, 200);
  EXPECT_TRUE(Matches(Match(q10)).empty());
  EXPECT_EQ(Matches(Match(Excerpt(w11, 5, 10, "w11-5s.mp3"))).size(), 1u);
}

TEST_F(FingerprintTest, AnImportKilledMidwayLosesNothingAcknowledgedAndResumes) {
  const tfs::path library = dir_.path() / "library";
  tfs::create_directories(library);
  constexpr int kWorks = 16;
  for (int i = 0; i < kWorks; ++i) {
    tfs::copy_file(MakeMelody(100 + i, 30, "lib" + std::to_string(i) + ".flac"),
                   library / ("track" + std::to_string(i) + ".flac"));
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(port());
  const std::string token = process_->admin_token();
  std::string first_output;
  int first_rc = -1;
  std::thread import([&] {
    first_rc = PlyrProcess::RunCommand({PlyrProcess::BinaryPath(), "fingerprint", "import", library.string(), "--url",
                                        url, "--token", token, "--jobs", "1"},
                                       &first_output, std::chrono::seconds(60));
  });
  // Kill the service once a few references are in.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    auto stats = Fetch(port(), "GET", "/v1/index", Auth(), "", std::chrono::seconds(2));
    if (stats.status == 200 && JsonNum(ParseJson(stats.body), {"references"}) >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  process_->Kill();
  import.join();
  process_ = std::make_unique<PlyrProcess>(dir_.path());
  ASSERT_TRUE(process_->StartServe({"fingerprint"})) << process_->log();

  // Every reference the import reported added is there.
  std::size_t acknowledged = 0;
  std::istringstream lines(first_output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("added ", 0) != 0) continue;
    const std::string id = line.substr(6, 16);
    EXPECT_EQ(Fetch(port(), "GET", "/v1/references/" + id, Auth()).status, 200) << line;
    ++acknowledged;
  }
  // Three references were in the index at the kill, so with one job the import had the answers to
  // the first two (it sends the next file only after the previous answer); the third's answer
  // may have been lost with the process.
  EXPECT_GE(acknowledged, 2u) << first_output;
  if (acknowledged < kWorks) {
    EXPECT_EQ(first_rc, 1) << first_output;  // the rest failed, and it said so
  }

  // A second run registers the rest and skips what is there.
  std::string second_output;
  const int second_rc = PlyrProcess::RunCommand({PlyrProcess::BinaryPath(), "fingerprint", "import",
                                                 library.string(), "--url",
                                                 "http://127.0.0.1:" + std::to_string(port()), "--token", token},
                                                &second_output, std::chrono::seconds(60));
  EXPECT_EQ(second_rc, 0) << second_output;
  EXPECT_EQ(JsonNum(ParseJson(Fetch(port(), "GET", "/v1/index", Auth()).body), {"references"}), kWorks);
}

}  // namespace
}  // namespace plyr::testing
