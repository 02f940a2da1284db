// The transcoder end to end: jobs in one process and across two, the drop-in's format matrix,
// every input format found by content, auth, signed callbacks and progress events.
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <map>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "tests/transcoder/transcoder_fixture.h"

namespace plyr::testing {
namespace {

// The ladder a job gets when it names none (transcoder.renditions' default).
struct LadderEntry {
  const char* name;
  const char* codec;
  const char* content_type;
  std::int64_t bitrate;
  int sample_rate;
};
constexpr LadderEntry kDefaultLadder[] = {
    {"mp3-320", "mp3", "audio/mpeg", 320000, 44100}, {"mp3-128", "mp3", "audio/mpeg", 128000, 44100},
    {"aac-256", "aac", "audio/mp4", 256000, 44100},  {"opus-128", "opus", "audio/ogg", 128000, 48000},
    {"opus-64", "opus", "audio/ogg", 64000, 48000},
};

// A 3 s stereo 44.1 kHz FLAC of a 440 Hz sine at amplitude 0.5 in both channels.
tfs::path LoudSineFlac() {
  return MakeMedia("sine-3s-0.5.flac", {"-f", "lavfi", "-i",
                                        "aevalsrc=exprs=0.5*sin(2*PI*440*t)|0.5*sin(2*PI*440*t):s=44100:d=3",
                                        "-c:a", "flac", "-f", "flac"});
}

// Checks a done job's result against the 3 s input (LoudSineFlac) and the ladder asked for.
void ExpectDoneJobMatchesInput(const boost::json::value& job, const std::string& input, const tfs::path& input_path,
                               const std::vector<LadderEntry>& ladder) {
  ASSERT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);
  EXPECT_EQ(JsonNum(job, {"progress"}), 1.0);
  EXPECT_EQ(JsonNum(job, {"attempts"}), 1.0);
  EXPECT_TRUE(JsonAt(job, {"error"}) && JsonAt(job, {"error"})->is_null());

  // Facts: measured on the decoded audio.
  ASSERT_TRUE(JsonAt(job, {"result", "facts"})) << boost::json::serialize(job);
  const boost::json::value& facts = *JsonAt(job, {"result", "facts"});
  EXPECT_NEAR(JsonNum(facts, {"duration_ms"}), 3000, 50);
  EXPECT_EQ(JsonStr(facts, {"codec"}), "flac");
  EXPECT_EQ(JsonNum(facts, {"sample_rate"}), 44100);
  EXPECT_EQ(JsonNum(facts, {"channels"}), 2);
  EXPECT_EQ(JsonNum(facts, {"decode_errors"}), 0);
  const Loudness reference = ReferenceLoudness(input_path);
  ASSERT_FALSE(std::isnan(reference.integrated_lufs)) << "ffmpeg's ebur128 summary could not be read";
  EXPECT_NEAR(JsonNum(facts, {"loudness", "integrated_lufs"}), reference.integrated_lufs, 0.5);
  EXPECT_NEAR(JsonNum(facts, {"loudness", "true_peak_dbtp"}), reference.true_peak_dbtp, 0.5);
  EXPECT_GE(JsonNum(facts, {"loudness", "range_lu"}), 0.0);
  // A sine at 0.5 in both channels: about -6.7 LUFS, a true peak near -6 dBTP.
  EXPECT_NEAR(JsonNum(facts, {"loudness", "integrated_lufs"}), -6.7, 1.0);
  EXPECT_NEAR(JsonNum(facts, {"loudness", "true_peak_dbtp"}), -6.0, 0.5);
  const boost::json::value* peaks = JsonAt(facts, {"peaks"});
  ASSERT_TRUE(peaks && peaks->is_array());
  ASSERT_FALSE(peaks->as_array().empty());
  EXPECT_LE(peaks->as_array().size(), 1000u);
  double lowest = 0, highest = 0;
  for (const auto& pair : peaks->as_array()) {
    ASSERT_TRUE(pair.is_array() && pair.as_array().size() == 2);
    const double lo = pair.as_array()[0].to_number<double>();
    const double hi = pair.as_array()[1].to_number<double>();
    EXPECT_LE(lo, hi);
    EXPECT_GE(lo, -1.0);
    EXPECT_LE(hi, 1.0);
    lowest = std::min(lowest, lo);
    highest = std::max(highest, hi);
  }
  EXPECT_NEAR(highest, 0.5, 0.03);
  EXPECT_NEAR(lowest, -0.5, 0.03);

  // The original: the uploaded bytes, under their content address.
  const std::string original = JsonStr(job, {"result", "original", "file_id"});
  EXPECT_EQ(original, JsonStr(job, {"input", "file_id"}));
  EXPECT_EQ(JsonNum(job, {"result", "original", "size"}), static_cast<double>(input.size()));
  EXPECT_EQ(JsonStr(job, {"result", "track", "file_id"}), original);
  EXPECT_EQ(JsonStr(job, {"result", "track", "owner_did"}), "did:plc:artist");

  const boost::json::value* renditions = JsonAt(job, {"result", "renditions"});
  ASSERT_TRUE(renditions && renditions->is_array());
  ASSERT_EQ(renditions->as_array().size(), ladder.size()) << boost::json::serialize(*renditions);
  std::set<std::string> ids = {original};
  for (std::size_t i = 0; i < ladder.size(); ++i) {
    const boost::json::value& r = renditions->as_array()[i];
    SCOPED_TRACE(ladder[i].name);
    EXPECT_EQ(JsonStr(r, {"name"}), ladder[i].name);
    EXPECT_EQ(JsonStr(r, {"codec"}), ladder[i].codec);
    EXPECT_EQ(JsonStr(r, {"content_type"}), ladder[i].content_type);
    EXPECT_EQ(JsonNum(r, {"bitrate"}), static_cast<double>(ladder[i].bitrate));
    EXPECT_EQ(JsonNum(r, {"sample_rate"}), ladder[i].sample_rate);
    EXPECT_EQ(JsonNum(r, {"channels"}), 2);
    EXPECT_GT(JsonNum(r, {"size"}), 0);
    EXPECT_GE(JsonNum(r, {"duration_ms"}), 2700);
    EXPECT_LE(JsonNum(r, {"duration_ms"}), 3300);
    EXPECT_TRUE(IsLowerHex(JsonStr(r, {"file_id"}), 16));
    ids.insert(JsonStr(r, {"file_id"}));
  }
  EXPECT_EQ(ids.size(), ladder.size() + 1) << "every rendition is a distinct file";
}

std::vector<LadderEntry> DefaultLadder() { return {std::begin(kDefaultLadder), std::end(kDefaultLadder)}; }

// ---------------------------------------------------------------------------------------------
// Jobs

class TranscoderJobTest : public TranscoderTest {
 protected:
  // The streamer holds the track with every rendition, and every file streams and decodes.
  void ExpectPublished(const boost::json::value& job, const std::string& input, const std::string& original_type,
                       const std::string& original_codec) {
    const std::string original = JsonStr(job, {"result", "original", "file_id"});
    HttpResult track = Streamer("/v1/tracks/" + original, StreamerAdmin());
    ASSERT_EQ(track.status, 200) << track.body;
    const boost::json::value doc = ParseJson(track.body);
    EXPECT_EQ(JsonStr(doc, {"owner_did"}), "did:plc:artist");
    EXPECT_EQ(JsonStr(doc, {"gate"}), "none");
    for (const auto& r : JsonAt(job, {"result", "renditions"})->as_array()) {
      EXPECT_EQ(JsonStr(doc, {"renditions", JsonStr(r, {"name"}), "file_id"}), JsonStr(r, {"file_id"}))
          << track.body;
    }
    const std::string streamed = ExpectStreams(original, input.size(), original_type, original_codec, 2.9);
    EXPECT_TRUE(streamed == input) << "the original must stream byte for byte";
    ExpectRenditionsStream(job, 2.7);
  }
};

TEST_F(TranscoderJobTest, JobEndToEndInOneProcess) {
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const tfs::path input_path = LoudSineFlac();
  const std::string input = ReadBytes(input_path);
  ASSERT_FALSE(input.empty());

  const std::string id =
      SubmitOk(input, "&track_uri=" + UrlEncode("at://did:plc:artist/fm.plyr.track/3abc") + "&gate=none",
               "audio/flac");
  ASSERT_FALSE(id.empty());
  const boost::json::value job = WaitForEnd(id);
  ASSERT_NO_FATAL_FAILURE(ExpectDoneJobMatchesInput(job, input, input_path, DefaultLadder()));
  EXPECT_EQ(JsonStr(job, {"result", "track", "uri"}), "at://did:plc:artist/fm.plyr.track/3abc");
  EXPECT_EQ(JsonStr(job, {"result", "original", "content_type"}), "audio/flac");
  ExpectPublished(job, input, "audio/flac", "flac");
  // No fingerprint service is configured: no copyright stage, whatever the job's option says.
  EXPECT_EQ(JsonAt(job, {"result", "copyright"}), nullptr) << boost::json::serialize(job);
  EXPECT_EQ(JsonAt(job, {"result", "fingerprint_cpu_s"}), nullptr);
  ASSERT_TRUE(JsonAt(job, {"options", "copyright_check"}));
  EXPECT_TRUE(JsonAt(job, {"options", "copyright_check"})->as_bool());

  // The job is listed as done, not as failed, and a finished job cannot be cancelled.
  const auto done = ListJobIds("?state=done");
  EXPECT_NE(std::find(done.begin(), done.end(), id), done.end());
  const auto failed = ListJobIds("?state=failed");
  EXPECT_EQ(std::find(failed.begin(), failed.end(), id), failed.end());
  HttpResult cancel = Transcoder("DELETE", "/v1/jobs/" + id, Admin());
  EXPECT_EQ(cancel.status, 409) << cancel.body;
  EXPECT_EQ(JsonStr(GetJob(id), {"state"}), "done");
}

TEST_F(TranscoderJobTest, JobEndToEndAcrossTwoProcesses) {
  ASSERT_NO_FATAL_FAILURE(StartSeparate());
  const tfs::path input_path = LoudSineFlac();
  const std::string input = ReadBytes(input_path);
  const std::string id = SubmitOk(input, "&renditions=mp3-128,aac-128,opus-64");
  ASSERT_FALSE(id.empty());
  const boost::json::value job = WaitForEnd(id);
  ASSERT_NO_FATAL_FAILURE(ExpectDoneJobMatchesInput(job, input, input_path,
                                                    {{"mp3-128", "mp3", "audio/mpeg", 128000, 44100},
                                                     {"aac-128", "aac", "audio/mp4", 128000, 44100},
                                                     {"opus-64", "opus", "audio/ogg", 64000, 48000}}));
  // Sent as application/octet-stream: the original's type comes from probing its content.
  EXPECT_EQ(JsonStr(job, {"result", "original", "content_type"}), "audio/flac");
  ExpectPublished(job, input, "audio/flac", "flac");
  EXPECT_EQ(streamer_process_->log().find(streamer_token_), std::string::npos);
  EXPECT_EQ(process_->log().find(streamer_token_), std::string::npos);
}

TEST_F(TranscoderJobTest, AStreamerRefusingTheTokenFailsTheJobAtOnce) {
  streamer_process_ = std::make_unique<PlyrProcess>(dir_.path() / "streamer-data");
  ASSERT_TRUE(streamer_process_->StartServe({"streamer"})) << streamer_process_->log();
  streamer_port_ = streamer_process_->port("streamer");
  ASSERT_NO_FATAL_FAILURE(
      StartTranscoderAlone("http://127.0.0.1:" + std::to_string(streamer_port_), "not-the-streamer-token"));
  const auto started = std::chrono::steady_clock::now();
  const std::string id = SubmitOk(ReadBytes(LoudSineFlac()), "&renditions=opus-64");
  const boost::json::value job = WaitForEnd(id);
  EXPECT_EQ(JsonStr(job, {"state"}), "failed") << boost::json::serialize(job);
  EXPECT_NE(JsonStr(job, {"error", "message"}).find("streamer"), std::string::npos) << boost::json::serialize(job);
  EXPECT_NE(JsonStr(job, {"error", "message"}).find("401"), std::string::npos) << boost::json::serialize(job);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10)) << "a 401 is not worth retrying";
}

TEST_F(TranscoderJobTest, AnUnreachableStreamerFailsTheJobAfterRetries) {
  ASSERT_NO_FATAL_FAILURE(StartTranscoderAlone("http://127.0.0.1:1", "some-token"));
  const auto started = std::chrono::steady_clock::now();
  const std::string id = SubmitOk(ReadBytes(LoudSineFlac()), "&renditions=opus-64");
  ASSERT_FALSE(id.empty());
  const boost::json::value job = WaitForEnd(id);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(JsonStr(job, {"state"}), "failed") << boost::json::serialize(job);
  EXPECT_EQ(JsonStr(job, {"error", "error"}), "Unavailable");
  const std::string message = JsonStr(job, {"error", "message"});
  EXPECT_NE(message.find("streamer"), std::string::npos) << message;
  EXPECT_NE(message.find("127.0.0.1:1"), std::string::npos) << message;
  EXPECT_GE(took, std::chrono::seconds(5)) << "the job must retry before it gives up";
  EXPECT_EQ(Transcoder("GET", "/health").status, 200);
  // The upload stays stored: the job can be submitted again by file id once the streamer is back.
  EXPECT_EQ(JsonStr(job, {"input", "file_id"}).size(), 16u);
}

TEST_F(TranscoderJobTest, AJobCanNameAFileOnlyTheStreamerStores) {
  // Separate processes: the transcoder has never seen these bytes; the API layer put them in the
  // streamer, and the job names them by file_id.
  ASSERT_NO_FATAL_FAILURE(StartSeparate());
  const std::string input = ReadBytes(LoudSineFlac());
  Headers put = StreamerAdmin();
  put.emplace_back("Content-Type", "audio/flac");
  HttpResult stored = Fetch(streamer_port_, "PUT", "/v1/files", put, input);
  ASSERT_EQ(stored.status, 201) << stored.body;
  const std::string file_id = JsonStr(ParseJson(stored.body), {"file_id"});
  // The streamer's admin read of the bytes, with no track and no gate involved.
  HttpResult raw = Streamer("/v1/files/" + file_id, StreamerAdmin());
  ASSERT_EQ(raw.status, 200);
  EXPECT_EQ(raw.body, input);
  EXPECT_EQ(Streamer("/v1/files/" + file_id).status, 401);
  EXPECT_EQ(Streamer("/v1/files/0123456789abcdef", StreamerAdmin()).status, 404);

  Headers h = Admin();
  h.emplace_back("Content-Type", "application/json");
  HttpResult submitted = Transcoder("POST", "/v1/jobs", h,
                                    R"({"file_id":")" + file_id + R"(","owner_did":"did:plc:artist","renditions":"opus-64"})");
  ASSERT_EQ(submitted.status, 202) << submitted.body;
  const boost::json::value job = WaitForEnd(JsonStr(ParseJson(submitted.body), {"id"}));
  ASSERT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);
  EXPECT_EQ(JsonStr(job, {"result", "original", "file_id"}), file_id);
  EXPECT_EQ(JsonStr(job, {"result", "original", "content_type"}), "audio/flac");
  ASSERT_NO_FATAL_FAILURE(ExpectRenditionsStream(job, 1.5));
}

TEST_F(TranscoderJobTest, ASecondJobCanNameAStoredUpload) {
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const std::string input = ReadBytes(LoudSineFlac());
  const std::string first = SubmitOk(input, "&renditions=mp3-128");
  const boost::json::value done = WaitForEnd(first);
  ASSERT_EQ(JsonStr(done, {"state"}), "done") << boost::json::serialize(done);
  const std::string file_id = JsonStr(done, {"input", "file_id"});

  Headers h = Admin();
  h.emplace_back("Content-Type", "application/json");
  HttpResult second = Transcoder(
      "POST", "/v1/jobs", h,
      R"({"file_id":")" + file_id + R"(","owner_did":"did:plc:artist","renditions":["opus-64"],"gate":"any"})");
  ASSERT_EQ(second.status, 202) << second.body;
  const boost::json::value job = WaitForEnd(JsonStr(ParseJson(second.body), {"id"}));
  ASSERT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);
  EXPECT_EQ(JsonStr(job, {"result", "original", "file_id"}), file_id);
  ASSERT_EQ(JsonAt(job, {"result", "renditions"})->as_array().size(), 1u);
  EXPECT_EQ(JsonStr(JsonAt(job, {"result", "renditions"})->as_array()[0], {"name"}), "opus-64");
  HttpResult track = Streamer("/v1/tracks/" + file_id, StreamerAdmin());
  EXPECT_EQ(JsonStr(ParseJson(track.body), {"gate"}), "any") << track.body;

  // Refused before any work: an unknown upload, a bad owner, a bad ladder, a bad gate.
  const auto before = ListJobIds();
  const std::string tiny(1000, 'x');
  HttpResult unknown =
      Transcoder("POST", "/v1/jobs", h, R"({"file_id":"0123456789abcdef","owner_did":"did:plc:artist"})");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(Submit(tiny, "&renditions=mp3-999").status, 400);
  EXPECT_EQ(Submit(tiny, "&gate=everyone").status, 400);
  EXPECT_EQ(Transcoder("POST", "/v1/jobs?owner_did=nobody", Admin(), tiny).status, 400);
  EXPECT_EQ(Submit(tiny, "&callback_url=" + UrlEncode("ftp://127.0.0.1/x")).status, 400);
  EXPECT_EQ(ListJobIds(), before);
  EXPECT_EQ(Transcoder("GET", "/v1/jobs/" + std::string(24, 'a'), Admin()).status, 404);
  EXPECT_EQ(Transcoder("GET", "/v1/jobs/not-an-id", Admin()).status, 404);
  EXPECT_EQ(Transcoder("GET", "/v1/jobs?state=bogus", Admin()).status, 400);
  EXPECT_EQ(Transcoder("GET", "/v1/jobs?limit=0", Admin()).status, 400);
  EXPECT_EQ(ListJobIds("?limit=1").size(), 1u);
}

// The streamer keys a track by its original's bytes, so two jobs on the same audio (another
// ladder later, or the same file uploaded twice) register the same track. The first job's result
// still names its renditions: they must keep streaming.
TEST_F(TranscoderJobTest, ASecondJobOnTheSameAudioKeepsTheFirstJobsRenditionsStreaming) {
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const std::string input = ReadBytes(LoudSineFlac());
  const boost::json::value first = WaitForEnd(SubmitOk(input, "&renditions=mp3-128"));
  ASSERT_EQ(JsonStr(first, {"state"}), "done") << boost::json::serialize(first);
  const boost::json::value second = WaitForEnd(SubmitOk(input, "&renditions=opus-64"));
  ASSERT_EQ(JsonStr(second, {"state"}), "done") << boost::json::serialize(second);
  {
    SCOPED_TRACE("the second job's renditions");
    ExpectRenditionsStream(second, 2.7);
  }
  {
    SCOPED_TRACE("the first job's renditions, after the second job");
    ExpectRenditionsStream(first, 2.7);
  }
  HttpResult track = Streamer("/v1/tracks/" + JsonStr(first, {"result", "original", "file_id"}), StreamerAdmin());
  const boost::json::value doc = ParseJson(track.body);
  EXPECT_TRUE(JsonAt(doc, {"renditions", "mp3-128"})) << track.body;
  EXPECT_TRUE(JsonAt(doc, {"renditions", "opus-64"})) << track.body;
}

// ---------------------------------------------------------------------------------------------
// Every input format, recognised by content (no names anywhere)

struct FormatCase {
  const char* label;
  std::vector<std::string> make;  // ffmpeg arguments after the lavfi source
  int rate;
  int channels;
  const char* codec;             // facts.codec: the input's codec
  const char* original_type;     // the original's Content-Type, found by probing
};

TEST_F(TranscoderTest, EveryInputFormatIsRecognisedByContent) {
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const std::vector<FormatCase> cases = {
      {"mp3", {"-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"}, 44100, 2, "mp3", "audio/mpeg"},
      {"wav", {"-c:a", "pcm_s16le", "-f", "wav"}, 44100, 2, "pcm_s16le", "audio/wav"},
      {"m4a-aac", {"-c:a", "aac", "-b:a", "192k", "-f", "ipod"}, 44100, 2, "aac", "audio/mp4"},
      {"m4a-alac", {"-c:a", "alac", "-f", "ipod"}, 44100, 2, "alac", "audio/mp4"},
      {"aiff", {"-c:a", "pcm_s16be", "-f", "aiff"}, 44100, 2, "pcm_s16be", "audio/aiff"},
      {"flac", {"-c:a", "flac", "-f", "flac"}, 44100, 2, "flac", "audio/flac"},
      {"webm-opus", {"-c:a", "libopus", "-b:a", "96k", "-f", "webm"}, 48000, 2, "opus", "audio/webm"},
      {"ogg-vorbis", {"-c:a", "libvorbis", "-q:a", "4", "-f", "ogg"}, 44100, 2, "vorbis", "audio/ogg"},
      {"ogg-opus", {"-c:a", "libopus", "-b:a", "96k", "-f", "ogg"}, 48000, 2, "opus", "audio/ogg"},
      {"mono", {"-c:a", "flac", "-f", "flac"}, 44100, 1, "flac", "audio/flac"},
      {"surround-5_1", {"-c:a", "flac", "-f", "flac"}, 48000, 6, "flac", "audio/flac"},
      {"8k", {"-c:a", "pcm_s16le", "-f", "wav"}, 8000, 2, "pcm_s16le", "audio/wav"},
      {"192k", {"-c:a", "flac", "-f", "flac"}, 192000, 2, "flac", "audio/flac"},
  };
  std::vector<std::pair<const FormatCase*, std::string>> jobs;
  for (const auto& c : cases) {
    const tfs::path file = MakeSine(std::string("by-content-") + c.label, 2, c.rate, c.channels, c.make);
    ASSERT_EQ(file.extension(), "") << "inputs carry no extension";
    const std::string bytes = ReadBytes(file);
    ASSERT_FALSE(bytes.empty()) << c.label;
    jobs.emplace_back(&c, SubmitOk(bytes, "&renditions=mp3-128,opus-64"));
  }
  for (const auto& [c, id] : jobs) {
    SCOPED_TRACE(c->label);
    const boost::json::value job = WaitForEnd(id);
    ASSERT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);
    ASSERT_TRUE(JsonAt(job, {"result", "facts"}) && JsonAt(job, {"result", "renditions"}));
    const boost::json::value& facts = *JsonAt(job, {"result", "facts"});
    EXPECT_EQ(JsonStr(facts, {"codec"}), c->codec);
    EXPECT_EQ(JsonNum(facts, {"sample_rate"}), c->rate);
    EXPECT_EQ(JsonNum(facts, {"channels"}), c->channels);
    EXPECT_NEAR(JsonNum(facts, {"duration_ms"}), 2000, 60);
    EXPECT_EQ(JsonNum(facts, {"decode_errors"}), 0);
    EXPECT_EQ(JsonStr(job, {"result", "original", "content_type"}), c->original_type);
    const int out_channels = std::min(c->channels, 2);
    for (const auto& r : JsonAt(job, {"result", "renditions"})->as_array()) {
      EXPECT_EQ(JsonNum(r, {"channels"}), out_channels) << JsonStr(r, {"name"});
    }
    ExpectRenditionsStream(job, 1.8);
  }
}

// ---------------------------------------------------------------------------------------------
// POST /transcode, the drop-in for plyr.fm's Rust transcoder: its CI format matrix

std::string Multipart(const std::string& boundary, const std::string& filename, const std::string& bytes) {
  return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename +
         "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + bytes + "\r\n--" + boundary + "--\r\n";
}

class TranscoderDropInTest : public TranscoderTest {
 protected:
  static constexpr const char* kBoundary = "plyr-test-boundary-4f7c1a";

  HttpResult DropIn(const std::string& target, const std::string& filename, const std::string& bytes,
                    Headers headers = {}) {
    if (headers.empty()) headers = {{"X-Transcoder-Key", token_}};
    headers.emplace_back("Content-Type", std::string("multipart/form-data; boundary=") + kBoundary);
    return Transcoder("POST", "/transcode?target=" + target, headers, Multipart(kBoundary, filename, bytes));
  }

  // The answer is the converted file; checks it with ffprobe.
  void ExpectConverted(const HttpResult& r, const std::string& stem, const std::string& target, const char* codec,
                       int rate, int channels) {
    SCOPED_TRACE(stem + " -> " + target);
    ASSERT_EQ(r.status, 200) << r.transport_error << " " << r.body.substr(0, 300);
    EXPECT_EQ(r.Header("content-disposition"), "attachment; filename=\"" + stem + "." + target + "\"");
    const std::map<std::string, std::string> types = {
        {"mp3", "audio/mpeg"}, {"m4a", "audio/mp4"}, {"wav", "audio/wav"}};
    EXPECT_EQ(r.Header("content-type"), types.at(target));
    const tfs::path out = dir_.path() / ("drop-in-" + stem + "." + target);
    WriteBytes(out, r.body);
    const Probe probe = ProbeFile(out);
    ASSERT_TRUE(probe.ok) << probe.raw;
    EXPECT_EQ(probe.codec, codec);
    EXPECT_GE(probe.duration_s, 1.6) << probe.raw;
    EXPECT_LE(probe.duration_s, 2.2) << probe.raw;
    EXPECT_EQ(probe.sample_rate, rate);
    EXPECT_EQ(probe.channels, channels);
    EXPECT_EQ(DecodeErrors(out), "");
  }
};

TEST_F(TranscoderDropInTest, FormatMatrix) {
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const std::vector<std::pair<std::string, std::vector<std::string>>> inputs = {
      {"aiff", {"-f", "aiff"}},
      {"flac", {"-c:a", "flac", "-f", "flac"}},
      {"wav", {"-c:a", "pcm_s16le", "-f", "wav"}},
      {"mp3", {"-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"}},
      {"m4a", {"-c:a", "aac", "-b:a", "192k", "-f", "ipod"}},
  };
  struct Target {
    const char* name;
    const char* codec;
  };
  const Target targets[] = {{"mp3", "mp3"}, {"m4a", "aac"}, {"wav", "pcm_s16le"}};
  for (const auto& [ext, make] : inputs) {
    const std::string bytes = ReadBytes(MakeSine("matrix." + ext, 2, 44100, 2, make));
    ASSERT_FALSE(bytes.empty()) << ext;
    for (const auto& target : targets) {
      HttpResult r = DropIn(target.name, "Song " + ext + "." + ext, bytes);
      ExpectConverted(r, "Song " + ext, target.name, target.codec, 44100, 2);
    }
  }
  // WAV keeps the source's rate and channels; MP3 and M4A are 44.1 kHz.
  const std::string mono48 =
      ReadBytes(MakeSine("matrix-48k-mono.wav", 2, 48000, 1, {"-c:a", "pcm_s16le", "-f", "wav"}));
  ExpectConverted(DropIn("wav", "mono.wav", mono48), "mono", "wav", "pcm_s16le", 48000, 1);
  ExpectConverted(DropIn("mp3", "mono.wav", mono48), "mono", "mp3", "mp3", 44100, 1);
  ExpectConverted(DropIn("m4a", "mono.wav", mono48), "mono", "m4a", "aac", 44100, 1);
  // MP3 is 320k CBR, M4A AAC around 256k.
  HttpResult mp3 = DropIn("mp3", "rate.wav", mono48);
  const tfs::path mp3_path = dir_.path() / "rate.mp3";
  WriteBytes(mp3_path, mp3.body);
  std::string bitrate;
  PlyrProcess::RunCommand({FindProgram("ffprobe"), "-v", "error", "-select_streams", "a:0", "-show_entries",
                           "stream=bit_rate", "-of", "default=nw=1:nk=1", mp3_path.string()},
                          &bitrate, std::chrono::seconds(30));
  EXPECT_EQ(std::atoi(bitrate.c_str()), 320000) << bitrate;
  // The drop-in keeps nothing once it has answered.
  std::size_t left = 0;
  for (const auto& e : tfs::recursive_directory_iterator(transcoder_dir() / "work")) left += e.is_regular_file();
  EXPECT_EQ(left, 0u);
}

TEST_F(TranscoderDropInTest, ErrorsHaveTheRustServiceShape) {
  ASSERT_NO_FATAL_FAILURE(StartCombined({"--transcoder-upload-max-bytes", "400000"}));
  const std::string wav = ReadBytes(MakeSine("matrix.wav", 2, 44100, 2, {"-c:a", "pcm_s16le", "-f", "wav"}));
  ASSERT_LT(wav.size(), 390000u);
  auto error_of = [](const std::string& body) { return JsonStr(ParseJson(body), {"error"}); };

  HttpResult target = DropIn("ogg", "a.wav", wav);
  EXPECT_EQ(target.status, 400);
  EXPECT_TRUE(error_of(target.body).starts_with("bad request:")) << target.body;

  HttpResult not_audio = DropIn("mp3", "a.txt", std::string(5000, 'x'));
  EXPECT_EQ(not_audio.status, 400) << not_audio.body;
  EXPECT_TRUE(error_of(not_audio.body).starts_with("bad request:")) << not_audio.body;

  HttpResult empty = DropIn("mp3", "empty.wav", "");
  EXPECT_EQ(empty.status, 400) << empty.body;
  EXPECT_TRUE(error_of(empty.body).starts_with("bad request:")) << empty.body;

  const std::string type = std::string("multipart/form-data; boundary=") + kBoundary;
  HttpResult no_file = Transcoder("POST", "/transcode?target=mp3",
                                  {{"X-Transcoder-Key", token_}, {"Content-Type", type}},
                                  "--" + std::string(kBoundary) +
                                      "\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--" +
                                      kBoundary + "--\r\n");
  EXPECT_EQ(no_file.status, 400);
  EXPECT_NE(error_of(no_file.body).find("'file'"), std::string::npos) << no_file.body;

  HttpResult not_multipart =
      Transcoder("POST", "/transcode?target=mp3", {{"X-Transcoder-Key", token_}, {"Content-Type", "audio/wav"}}, wav);
  EXPECT_EQ(not_multipart.status, 400) << not_multipart.body;

  // Too large, by its declared length (refused before a byte is read) ...
  {
    RawConnection c(transcoder_port_);
    ASSERT_TRUE(c.Send("POST /transcode?target=mp3 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Transcoder-Key: " + token_ +
                       "\r\nContent-Type: " + type + "\r\nContent-Length: 5000000\r\n\r\n"));
    const std::string answer = c.ReadUntilClose(std::chrono::seconds(10));
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 413")) << answer;
    EXPECT_TRUE(error_of(answer.substr(answer.find("\r\n\r\n") + 4)).starts_with("payload too large")) << answer;
  }
  // ... and chunked, found while reading.
  {
    const std::string form = Multipart(kBoundary, "big.wav", wav + wav.substr(0, 60000));
    std::ostringstream hex;
    hex << std::hex << form.size();
    RawConnection c(transcoder_port_);
    c.Send("POST /transcode?target=mp3 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Transcoder-Key: " + token_ +
           "\r\nContent-Type: " + type + "\r\nTransfer-Encoding: chunked\r\n\r\n" + hex.str() + "\r\n" + form +
           "\r\n0\r\n\r\n");
    const std::string answer = c.ReadUntilClose(std::chrono::seconds(10));
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 413")) << answer.substr(0, 300);
  }

  // Still serving, a good request still converts, and nothing was left behind.
  EXPECT_EQ(Transcoder("GET", "/health").status, 200);
  EXPECT_EQ(DropIn("mp3", "a.wav", wav).status, 200);
  std::size_t left = 0;
  for (const auto& e : tfs::recursive_directory_iterator(transcoder_dir() / "work")) left += e.is_regular_file();
  EXPECT_EQ(left, 0u);
}

// ---------------------------------------------------------------------------------------------
// Auth

TEST_F(TranscoderTest, EveryRouteNeedsTheToken) {
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const std::string audio = ReadBytes(LoudSineFlac());
  const std::string id = SubmitOk(audio, "&renditions=opus-64");
  ASSERT_FALSE(id.empty());
  WaitForEnd(id);
  const auto jobs_before = ListJobIds();

  const std::string wrong = token_.substr(0, token_.size() - 1) + (token_.back() == 'a' ? "b" : "a");
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"POST", "/v1/jobs?owner_did=did:plc:artist"}, {"GET", "/v1/jobs"}, {"GET", "/v1/jobs?state=done"},
      {"GET", "/v1/jobs/" + id},                     {"GET", "/v1/jobs/" + id + "/events"},
      {"DELETE", "/v1/jobs/" + id},
  };
  for (const auto& [method, target] : routes) {
    SCOPED_TRACE(method + " " + target);
    for (const Headers& headers :
         std::vector<Headers>{{}, {{"Authorization", "Bearer " + wrong}}, {{"Authorization", "Basic " + token_}},
                              {{"X-Transcoder-Key", token_}}, {{"Authorization", "Bearer"}}}) {
      HttpResult r = Transcoder(method, target, headers, method == "POST" ? std::string(2000, 'x') : "");
      EXPECT_EQ(r.status, 401) << r.body;
      EXPECT_EQ(JsonStr(ParseJson(r.body), {"error"}), "AuthenticationRequired");
    }
  }
  EXPECT_EQ(ListJobIds(), jobs_before) << "a refused submission must not create a job";
  EXPECT_EQ(JsonStr(GetJob(id), {"state"}), "done") << "a refused DELETE must not touch the job";

  // The drop-in takes X-Transcoder-Key or the bearer token, nothing else.
  const std::string boundary = "b0undary";
  const std::string form = Multipart(boundary, "a.flac", audio);
  const std::string small_form = Multipart(boundary, "a.flac", audio.substr(0, 2000));
  const std::string type = "multipart/form-data; boundary=" + boundary;
  for (const Headers& headers : std::vector<Headers>{{{"Content-Type", type}},
                                                     {{"Content-Type", type}, {"X-Transcoder-Key", wrong}},
                                                     {{"Content-Type", type}, {"X-Transcoder-Key", ""}},
                                                     {{"Content-Type", type}, {"Authorization", "Bearer " + wrong}}}) {
    HttpResult r = Transcoder("POST", "/transcode?target=mp3", headers, small_form);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_TRUE(JsonStr(ParseJson(r.body), {"error"}).starts_with("unauthorized")) << r.body;
  }
  EXPECT_EQ(Transcoder("POST", "/transcode?target=mp3", {{"Content-Type", type}, {"X-Transcoder-Key", token_}}, form)
                .status,
            200);
  EXPECT_EQ(Transcoder("POST", "/transcode?target=mp3", {{"Content-Type", type}, {"Authorization", "Bearer " + token_}},
                       form)
                .status,
            200);

  const std::string log = process_->log();
  EXPECT_EQ(log.find(token_), std::string::npos) << "the admin token must never be logged";
  const std::string key = ReadBytes(transcoder_dir() / "callback-key");
  ASSERT_GE(key.size(), 32u);
  EXPECT_EQ(log.find(key.substr(0, 32)), std::string::npos) << "the callback key must never be logged";
}

// ---------------------------------------------------------------------------------------------
// Callbacks

std::string HmacSha256Hex(const std::string& key, const std::string& message) {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(message.data()), message.size());
  crypto_auth_hmacsha256_final(&state, mac);
  char hex[2 * sizeof mac + 1];
  sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
  return hex;
}

TEST_F(TranscoderTest, CallbackIsSignedAndRetriedUntilAccepted) {
  ASSERT_EQ(sodium_init() >= 0, true);
  CallbackReceiver receiver(/*failures=*/1);
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const std::string id =
      SubmitOk(ReadBytes(LoudSineFlac()), "&renditions=mp3-128&callback_url=" + UrlEncode(receiver.url()));
  ASSERT_FALSE(id.empty());
  const boost::json::value job = WaitForEnd(id);
  ASSERT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);

  auto deliveries = receiver.WaitFor(2, std::chrono::seconds(20));
  ASSERT_GE(deliveries.size(), 2u) << "the failed first delivery must be retried";
  EXPECT_EQ(deliveries[0].answered, 500);
  EXPECT_EQ(deliveries[1].answered, 200);

  const tfs::path key_path = transcoder_dir() / "callback-key";
  struct stat st {};
  ASSERT_EQ(::stat(key_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u) << "the callback key must be owner-only";
  std::string key = ReadBytes(key_path);
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  ASSERT_FALSE(key.empty());

  for (const auto& d : deliveries) {
    SCOPED_TRACE("delivery answered " + std::to_string(d.answered));
    EXPECT_EQ(d.job, id);
    EXPECT_TRUE(d.content_type.starts_with("application/json")) << d.content_type;
    const long long ts = std::atoll(d.timestamp.c_str());
    EXPECT_LE(std::llabs(ts - static_cast<long long>(std::time(nullptr))), 300) << d.timestamp;
    EXPECT_EQ(d.signature, "sha256=" + HmacSha256Hex(key, d.timestamp + "." + d.body));
    EXPECT_NE(d.signature, "sha256=" + HmacSha256Hex(key, d.body)) << "the timestamp must be signed too";
    EXPECT_NE(d.signature, "sha256=" + HmacSha256Hex(key + "x", d.timestamp + "." + d.body));
    const boost::json::value body = ParseJson(d.body);
    EXPECT_EQ(JsonStr(body, {"id"}), id);
    EXPECT_EQ(JsonStr(body, {"state"}), "done");
    EXPECT_EQ(JsonStr(body, {"result", "original", "file_id"}), JsonStr(job, {"result", "original", "file_id"}));
  }
  // Accepted: no more deliveries (the next retry would have come 2 s after the first one).
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(receiver.deliveries().size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Progress events

TEST_F(TranscoderTest, EventsStreamProgressThenDone) {
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  // Long enough (about a second of work on two cores) for the poller to see it move.
  const std::string input = ReadBytes(MakeSine("events-15s.flac", 15, 44100, 2, {"-c:a", "flac", "-f", "flac"}));
  const std::string id = SubmitOk(input);
  ASSERT_FALSE(id.empty());

  bool closed = false;
  const std::string stream = EventStream(id, std::chrono::seconds(60), &closed);
  ASSERT_TRUE(closed) << "the stream must end when the job does; got: " << stream;
  ASSERT_TRUE(stream.starts_with("HTTP/1.1 200")) << stream.substr(0, 300);
  const auto header_end = stream.find("\r\n\r\n");
  ASSERT_NE(header_end, std::string::npos);
  EXPECT_NE(stream.substr(0, header_end).find("Content-Type: text/event-stream"), std::string::npos);

  // Events: blocks separated by a blank line, each "event: <name>\ndata: <json>".
  std::vector<std::pair<std::string, boost::json::value>> events;
  std::istringstream body(stream.substr(header_end + 4));
  std::string line, name;
  while (std::getline(body, line)) {
    if (line.starts_with("event: ")) name = line.substr(7);
    if (line.starts_with("data: ")) events.emplace_back(name, ParseJson(line.substr(6)));
  }
  ASSERT_GE(events.size(), 2u) << stream;
  EXPECT_EQ(events.back().first, "done") << stream;
  EXPECT_EQ(JsonStr(events.back().second, {"state"}), "done");
  EXPECT_EQ(JsonStr(events.back().second, {"id"}), id);
  double last = -1;
  std::size_t progress_events = 0, moving = 0;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i].first, "progress") << stream;
    const double p = JsonNum(events[i].second, {"progress"});
    EXPECT_GE(p, 0.0);
    EXPECT_LE(p, 1.0);
    EXPECT_GE(p, last) << "progress never goes back";
    last = p;
    ++progress_events;
    moving += p > 0 && p < 1;
  }
  EXPECT_GE(progress_events, 1u);
  EXPECT_GE(moving, 1u) << "some event shows the job part way: " << stream;
  EXPECT_EQ(JsonStr(GetJob(id), {"state"}), "done");

  // A finished job's stream is just its end.
  const std::string ended = EventStream(id, std::chrono::seconds(10), &closed);
  EXPECT_TRUE(closed);
  EXPECT_NE(ended.find("event: done\n"), std::string::npos) << ended;
  EXPECT_EQ(ended.find("event: progress"), std::string::npos) << ended;
  EXPECT_EQ(Transcoder("GET", "/v1/jobs/" + std::string(24, 'b') + "/events", Admin()).status, 404);
}

}  // namespace
}  // namespace plyr::testing

namespace plyr::testing {
namespace {

TEST_F(TranscoderTest, JobSubmitFollowsAJobToItsEnd) {
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const tfs::path input = LoudSineFlac();
  const std::string url = "http://127.0.0.1:" + std::to_string(transcoder_port_);
  std::string out;
  // Not a terminal here: plain progress lines on stderr, the final job JSON on stdout.
  const int status = PlyrProcess::RunToCompletion({"job", "submit", input.string(), "--url", url, "--data",
                                                   process_->data_dir().string(), "--owner", kOwner,
                                                   "--renditions", "opus-64", "--wait"},
                                                  &out);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(" done 100%"), std::string::npos) << out;
  const auto brace = out.find("{\"id\"");
  ASSERT_NE(brace, std::string::npos) << out;
  const boost::json::value job = ParseJson(out.substr(brace, out.find('\n', brace) - brace));
  EXPECT_EQ(JsonStr(job, {"state"}), "done");
  EXPECT_EQ(JsonAt(job, {"result", "renditions"})->as_array().size(), 1u);

  // A refused submission (no such owner DID shape) exits non-zero with the service's answer.
  out.clear();
  EXPECT_EQ(PlyrProcess::RunToCompletion({"job", "submit", input.string(), "--url", url, "--data",
                                          process_->data_dir().string(), "--owner", "nobody"},
                                         &out),
            1);
  EXPECT_NE(out.find("owner_did"), std::string::npos) << out;
  // No token anywhere: a usage error, not a request.
  out.clear();
  EXPECT_EQ(PlyrProcess::RunToCompletion({"job", "submit", input.string(), "--url", url, "--data",
                                          (process_->data_dir() / "nowhere").string(), "--owner", kOwner},
                                         &out),
            2);
}

}  // namespace
}  // namespace plyr::testing

namespace plyr::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// The copyright stage, against a stand-in fingerprint service (the real one has its own end-to-end
// test) and the real labeler

// 6 s of stereo 44.1 kHz FLAC with changing notes: long enough for a Chromaprint fingerprint.
tfs::path MelodyFlac() {
  return MakeMedia("melody-6s.flac",
                   {"-f", "lavfi", "-i",
                    "aevalsrc=exprs='0.3*sin(2*PI*t*220*pow(2,mod(floor(t*3)*7,12)/12))+0.05*(random(0)*2-1)|"
                    "0.3*sin(2*PI*t*330*pow(2,mod(floor(t*5)*5,12)/12))':s=44100:d=6",
                    "-c:a", "flac", "-f", "flac"});
}

// What the fingerprint service answers for a track it flags (its documented shape).
constexpr const char* kFlaggedAnswer =
    R"({"matches":[{"reference_id":"ref-1","title":"Song","artist":"Band","owner_did":"did:plc:label",)"
    R"("query_offset_s":0.0,"reference_offset_s":12.5,"duration_s":5.5,"score":0.93}],)"
    R"("dominant_match_pct":92,"dominant_match":"Band - Song","sustained_song_count":1,"is_flagged":true})";
constexpr const char* kClearAnswer =
    R"({"matches":[],"dominant_match_pct":0,"dominant_match":null,"sustained_song_count":0,"is_flagged":false})";

// POST /v1/match as the fingerprint service takes it: records every request and answers what the
// test set, after an optional delay. Runs our own HTTP server on a background thread.
class FakeFingerprintService {
 public:
  struct Received {
    std::string authorization;
    std::string content_type;
    std::string body;
  };

  FakeFingerprintService()
      : runtime_(std::make_unique<Runtime>(RuntimeOptions{1, ThreadModel::kPerCore})),
        metrics_(std::make_unique<MetricsRegistry>()) {
    Router router;
    router.Add(http::verb::post, "/v1/match", [this](Request& request) -> asio::awaitable<Response> {
      Received r;
      r.authorization = std::string(request.Field(http::field::authorization));
      r.content_type = std::string(request.Field(http::field::content_type));
      auto body = co_await request.ReadAll(8 << 20);
      if (auto* text = std::get_if<std::string>(&body)) r.body = std::move(*text);
      int status = 0;
      std::string answer;
      std::chrono::milliseconds delay{};
      {
        std::lock_guard lock(mutex_);
        received_.push_back(std::move(r));
        status = status_;
        answer = answer_;
        delay = delay_;
      }
      // Short sleeps, so the server can stop while a delayed answer is pending.
      const auto until = std::chrono::steady_clock::now() + delay;
      asio::steady_timer timer(co_await asio::this_coro::executor);
      while (!stopping_.load() && std::chrono::steady_clock::now() < until) {
        timer.expires_after(std::chrono::milliseconds(20));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      Response response;
      response.header.result(static_cast<http::status>(status));
      response.header.set(http::field::content_type, "application/json");
      response.body = std::move(answer);
      co_return response;
    });
    HttpServerOptions options;
    options.service = "fake-fingerprint";
    options.access_log = false;
    auto server = HttpServer::Create(*runtime_, {asio::ip::make_address("127.0.0.1"), 0}, std::move(router), options,
                                     *metrics_);
    server_ = std::move(server.value());
    server_->Start();
    thread_ = std::thread([this] { runtime_->Run(); });
  }

  ~FakeFingerprintService() {
    stopping_.store(true);
    DrainAndStop(*server_, *runtime_);
    thread_.join();
  }

  FakeFingerprintService(const FakeFingerprintService&) = delete;
  FakeFingerprintService& operator=(const FakeFingerprintService&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  // What the next requests get.
  void Answer(int status, std::string body, std::chrono::milliseconds delay = {}) {
    std::lock_guard lock(mutex_);
    status_ = status;
    answer_ = std::move(body);
    delay_ = delay;
  }

  std::vector<Received> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }

  // Waits (bounded) until at least `n` requests arrived; returns them.
  std::vector<Received> WaitFor(std::size_t n, std::chrono::milliseconds timeout = kWait) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto got = received();
      if (got.size() >= n || std::chrono::steady_clock::now() >= deadline) return got;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

 private:
  static constexpr std::chrono::seconds kWait{60};
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  int status_ = 200;                    // guarded by mutex_
  std::string answer_ = kClearAnswer;   // guarded by mutex_
  std::chrono::milliseconds delay_{};   // guarded by mutex_
  std::vector<Received> received_;      // guarded by mutex_
};

class TranscoderCopyrightTest : public TranscoderTest {
 protected:
  // A combined streamer and transcoder whose copyright stage asks `fake_`.
  void StartWithFingerprints(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--transcoder-fingerprint-url", fake_.url()};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_NO_FATAL_FAILURE(StartCombined(args));
  }

  // A done job with every rendition streaming: the copyright stage never undoes the transcode.
  boost::json::value RunToDone(const std::string& query) {
    const std::string id = SubmitOk(ReadBytes(MelodyFlac()), "&renditions=opus-64" + query);
    if (id.empty()) return nullptr;
    const boost::json::value job = WaitForEnd(id);
    EXPECT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);
    ExpectRenditionsStream(job, 5.5);
    return job;
  }

  std::string Metrics() { return Transcoder("GET", "/metrics").body; }

  FakeFingerprintService fake_;
};

// The JSON at `path` as text ("true", "{...}"), or "<missing>".
std::string JsonText(const boost::json::value& root, std::initializer_list<std::string_view> path) {
  const boost::json::value* v = JsonAt(root, path);
  return v ? boost::json::serialize(*v) : std::string("<missing>");
}

bool IsFingerprintText(std::string_view text) {
  return text.size() > 20 && std::all_of(text.begin(), text.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
         });
}

TEST_F(TranscoderCopyrightTest, AFlaggedTrackIsLabelledAndEveryAnswerIsRecorded) {
  PlyrProcess labeler(dir_.path() / "labeler-data");
  ASSERT_TRUE(labeler.StartServe({"labeler", "--http-drain-timeout-ms", "2000"})) << labeler.log();
  const unsigned short labeler_port = labeler.port("labeler");
  ASSERT_NE(labeler_port, 0);
  ASSERT_NO_FATAL_FAILURE(StartWithFingerprints(
      {"--transcoder-fingerprint-token", "fingerprint-secret", "--transcoder-label-flagged", "true",
       "--transcoder-labeler-url", "http://127.0.0.1:" + std::to_string(labeler_port),
       "--transcoder-labeler-token", labeler.admin_token()}));

  // Flagged, with a track URI: the service's answer is kept whole and the track is labelled.
  const std::string uri = "at://did:plc:artist/fm.plyr.track/3flag";
  fake_.Answer(200, kFlaggedAnswer);
  const boost::json::value flagged = RunToDone("&track_uri=" + UrlEncode(uri));
  const boost::json::value* copyright = JsonAt(flagged, {"result", "copyright"});
  ASSERT_TRUE(copyright && copyright->is_object()) << boost::json::serialize(flagged);
  const boost::json::value expected = ParseJson(kFlaggedAnswer);
  for (const auto& [key, value] : expected.as_object()) {
    EXPECT_EQ(JsonText(*copyright, {key}), boost::json::serialize(value)) << key;
  }
  EXPECT_GT(JsonNum(*copyright, {"checked_at_ms"}), 1.7e12);
  EXPECT_EQ(JsonStr(*copyright, {"label", "val"}), "copyright-violation");
  EXPECT_GE(JsonNum(*copyright, {"label", "seq"}), 1);
  EXPECT_GE(JsonNum(flagged, {"result", "fingerprint_cpu_s"}), 0);
  HttpResult labels = Fetch(labeler_port, "GET", "/xrpc/com.atproto.label.queryLabels?uriPatterns=" + UrlEncode(uri));
  ASSERT_EQ(labels.status, 200) << labels.body;
  const boost::json::value label_doc = ParseJson(labels.body);
  ASSERT_TRUE(JsonAt(label_doc, {"labels"}) && JsonAt(label_doc, {"labels"})->is_array()) << labels.body;
  ASSERT_EQ(JsonAt(label_doc, {"labels"})->as_array().size(), 1u) << labels.body;
  EXPECT_EQ(JsonStr(JsonAt(label_doc, {"labels"})->as_array()[0], {"val"}), "copyright-violation");
  EXPECT_EQ(JsonStr(JsonAt(label_doc, {"labels"})->as_array()[0], {"uri"}), uri);

  // What the service was sent: the speed-1 print, the decoded duration and the other speeds.
  auto requests = fake_.WaitFor(1);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].authorization, "Bearer fingerprint-secret");
  EXPECT_EQ(requests[0].content_type, "application/json");
  const boost::json::value sent = ParseJson(requests[0].body);
  const std::string print = JsonStr(sent, {"fingerprint"});
  EXPECT_TRUE(IsFingerprintText(print)) << print;
  EXPECT_NEAR(JsonNum(sent, {"duration_s"}), 6.0, 0.05) << requests[0].body;
  const boost::json::value* variants = JsonAt(sent, {"variants"});
  ASSERT_TRUE(variants && variants->is_array()) << requests[0].body;
  ASSERT_EQ(variants->as_array().size(), 2u);
  EXPECT_EQ(JsonNum(variants->as_array()[0], {"speed"}), 0.98);
  EXPECT_EQ(JsonNum(variants->as_array()[1], {"speed"}), 1.02);
  std::set<std::string> prints = {print};
  for (const auto& v : variants->as_array()) {
    EXPECT_TRUE(IsFingerprintText(JsonStr(v, {"fingerprint"})));
    prints.insert(JsonStr(v, {"fingerprint"}));
  }
  EXPECT_EQ(prints.size(), 3u) << "each speed is its own print";

  // Flagged without a track URI: nothing to label.
  const boost::json::value no_uri = RunToDone("");
  EXPECT_EQ(JsonStr(no_uri, {"result", "copyright", "label", "skipped"}), "no track_uri")
      << boost::json::serialize(no_uri);

  // Clear: recorded, no label.
  fake_.Answer(200, kClearAnswer);
  const boost::json::value clear = RunToDone("&track_uri=" + UrlEncode("at://did:plc:artist/fm.plyr.track/3ok"));
  EXPECT_EQ(JsonText(clear, {"result", "copyright", "is_flagged"}), "false") << boost::json::serialize(clear);
  EXPECT_EQ(JsonAt(clear, {"result", "copyright", "label"}), nullptr);

  // Refused (400): a scan failure, not retried; the job is still done.
  fake_.Answer(400, R"({"error":"InvalidRequest","message":"the fingerprint is too short"})");
  const boost::json::value refused = RunToDone("");
  EXPECT_EQ(JsonStr(refused, {"result", "copyright", "status"}), "scan_failed") << boost::json::serialize(refused);
  EXPECT_EQ(JsonStr(refused, {"result", "copyright", "error"}), "FailedPrecondition");
  EXPECT_NE(JsonStr(refused, {"result", "copyright", "message"}).find("too short"), std::string::npos);
  // A 200 that is not a match result is a failure too.
  fake_.Answer(200, R"({"hello":"world"})");
  const boost::json::value odd = RunToDone("");
  EXPECT_EQ(JsonStr(odd, {"result", "copyright", "status"}), "scan_failed") << boost::json::serialize(odd);
  EXPECT_EQ(fake_.received().size(), 5u) << "a refusal is not retried";

  // Opting out: no request, no "copyright".
  const boost::json::value skipped = RunToDone("&copyright_check=false");
  EXPECT_EQ(JsonAt(skipped, {"result", "copyright"}), nullptr) << boost::json::serialize(skipped);
  EXPECT_EQ(JsonText(skipped, {"options", "copyright_check"}), "false");
  EXPECT_EQ(fake_.received().size(), 5u);
  EXPECT_EQ(Submit("x", "&copyright_check=maybe").status, 400);

  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find("plyr_transcoder_copyright_checks_total{outcome=\"flagged\"} 2"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("plyr_transcoder_copyright_checks_total{outcome=\"clear\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("plyr_transcoder_copyright_checks_total{outcome=\"failed\"} 2"), std::string::npos);
  EXPECT_EQ(process_->log().find("fingerprint-secret"), std::string::npos) << "tokens never reach the log";
}

TEST_F(TranscoderCopyrightTest, AnUnreachableFingerprintServiceIsAScanFailureNotAJobFailure) {
  ASSERT_NO_FATAL_FAILURE(StartCombined({"--transcoder-fingerprint-url", "http://127.0.0.1:1"}));
  const auto started = std::chrono::steady_clock::now();
  const std::string input = ReadBytes(MelodyFlac());
  const std::string id = SubmitOk(input, "&renditions=opus-64");
  const boost::json::value job = WaitForEnd(id);
  ASSERT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::seconds(3)) << "retried, backing off";
  EXPECT_EQ(JsonStr(job, {"result", "copyright", "status"}), "scan_failed") << boost::json::serialize(job);
  EXPECT_EQ(JsonStr(job, {"result", "copyright", "error"}), "Unavailable");
  const std::string message = JsonStr(job, {"result", "copyright", "message"});
  EXPECT_NE(message.find("fingerprint service"), std::string::npos) << message;
  EXPECT_NE(message.find("127.0.0.1:1"), std::string::npos) << message;
  ExpectRenditionsStream(job, 5.5);
  EXPECT_NE(Metrics().find("plyr_transcoder_copyright_checks_total{outcome=\"failed\"} 1"), std::string::npos);

  // A JSON submission may opt out with a JSON boolean: no check, no wait.
  Headers h = Admin();
  h.emplace_back("Content-Type", "application/json");
  const std::string body = boost::json::serialize(
      boost::json::object{{"file_id", JsonStr(job, {"input", "file_id"})}, {"owner_did", kOwner},
                          {"renditions", "mp3-128"}, {"copyright_check", false}});
  HttpResult submitted = Transcoder("POST", "/v1/jobs", h, body);
  ASSERT_EQ(submitted.status, 202) << submitted.body;
  const auto second_started = std::chrono::steady_clock::now();
  const boost::json::value second = WaitForEnd(JsonStr(ParseJson(submitted.body), {"id"}));
  EXPECT_EQ(JsonStr(second, {"state"}), "done") << boost::json::serialize(second);
  EXPECT_EQ(JsonAt(second, {"result", "copyright"}), nullptr);
  EXPECT_LT(std::chrono::steady_clock::now() - second_started, std::chrono::seconds(3));
}

TEST_F(TranscoderCopyrightTest, TheJobsDeadlineBoundsTheStage) {
  ASSERT_NO_FATAL_FAILURE(StartWithFingerprints({"--transcoder-job-timeout-s", "5"}));
  fake_.Answer(200, kClearAnswer, std::chrono::seconds(30));  // far longer than the job may run
  const auto started = std::chrono::steady_clock::now();
  const boost::json::value job = RunToDone("");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(9));
  EXPECT_EQ(JsonStr(job, {"result", "copyright", "status"}), "scan_failed") << boost::json::serialize(job);
  EXPECT_EQ(JsonStr(job, {"result", "copyright", "error"}), "DeadlineExceeded");
  const auto requests = fake_.received();
  ASSERT_EQ(requests.size(), 1u) << "no retry past the deadline";
  // With no fingerprint_token, the service gets this process's admin token.
  EXPECT_EQ(requests[0].authorization, "Bearer " + token_);
}

TEST_F(TranscoderCopyrightTest, KillNineDuringTheStageRunsItAgainAndALateCancelIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartWithFingerprints());
  fake_.Answer(200, kFlaggedAnswer, std::chrono::seconds(20));
  const std::string id = SubmitOk(ReadBytes(MelodyFlac()), "&renditions=opus-64");
  ASSERT_EQ(fake_.WaitFor(1).size(), 1u);  // published, waiting for the match
  process_->Kill();
  fake_.Answer(200, kFlaggedAnswer);
  ASSERT_NO_FATAL_FAILURE(StartWithFingerprints());  // the same data folder
  const boost::json::value job = WaitForEnd(id);
  ASSERT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);
  EXPECT_EQ(JsonNum(job, {"attempts"}), 2);
  EXPECT_EQ(fake_.received().size(), 2u) << "the re-run repeats the stage";
  EXPECT_EQ(JsonText(job, {"result", "copyright", "is_flagged"}), "true") << boost::json::serialize(job);
  // label_flagged is off: a flagged track is recorded, not labelled.
  EXPECT_EQ(JsonAt(job, {"result", "copyright", "label"}), nullptr);

  // A cancel that arrives during the stage is too late, and says so: the renditions are
  // published, so the job finishes, check included.
  fake_.Answer(200, kClearAnswer, std::chrono::seconds(2));
  const std::string late = SubmitOk(ReadBytes(MelodyFlac()), "&renditions=mp3-128");
  ASSERT_EQ(fake_.WaitFor(3).size(), 3u);
  const HttpResult refused = Transcoder("DELETE", "/v1/jobs/" + late, Admin());
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(JsonStr(ParseJson(refused.body), {"error"}), "JobPublishing") << refused.body;
  const boost::json::value finished = WaitForEnd(late);
  EXPECT_EQ(JsonStr(finished, {"state"}), "done") << boost::json::serialize(finished);
  EXPECT_EQ(JsonText(finished, {"result", "copyright", "is_flagged"}), "false");
}

TEST_F(TranscoderTest, MetricsCountJobsByState) {
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const std::string input = ReadBytes(LoudSineFlac());
  const boost::json::value done = WaitForEnd(SubmitOk(input, "&renditions=opus-64"));
  ASSERT_EQ(JsonStr(done, {"state"}), "done");
  const boost::json::value failed = WaitForEnd(SubmitOk(std::string(4096, 't'), "&renditions=opus-64"));
  ASSERT_EQ(JsonStr(failed, {"state"}), "failed");
  // A job that ended is counted by then; its encoding slot is given back once its folder is
  // removed, a moment later: wait for the gauges (bounded).
  HttpResult metrics = Transcoder("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("plyr_transcoder_jobs_ended_total{state=\"done\"} 1"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("plyr_transcoder_jobs_ended_total{state=\"failed\"} 1"), std::string::npos);
  const auto settled = [&] {
    return metrics.body.find("plyr_transcoder_jobs{state=\"running\"} 0") != std::string::npos &&
           metrics.body.find("plyr_transcoder_jobs{state=\"queued\"} 0") != std::string::npos;
  };
  for (int i = 0; i < 100 && !settled(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    metrics = Transcoder("GET", "/metrics");
  }
  EXPECT_TRUE(settled()) << metrics.body;
}

}  // namespace
}  // namespace plyr::testing
