// The transcoder under bad input and bad luck: files that are not audio, damaged or lying
// audio, clients that vanish, a full queue, cancellation, kill -9, a full disk. Each ends in a
// clear job error or HTTP status, the process keeps serving, and nothing stored before is lost.
#include <random>

#include "tests/transcoder/transcoder_fixture.h"

namespace plyr::testing {
namespace {

class TranscoderBadInputTest : public TranscoderTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartCombined());
    ASSERT_NO_FATAL_FAILURE(RunGoodJob());
  }

  // A job that is done before the trouble starts. Later jobs use other audio (other_input_):
  // a job on the same upload would register the track again with its own ladder.
  void RunGoodJob() {
    good_input_ = ReadBytes(MakeSine("good-2s.flac", 2, 44100, 2, {"-c:a", "flac", "-f", "flac"}));
    other_input_ = ReadBytes(MakeSine("other-1500ms.flac", 1.5, 44100, 2, {"-c:a", "flac", "-f", "flac"}));
    ASSERT_NE(good_input_, other_input_);
    good_id_ = SubmitOk(good_input_, "&renditions=mp3-128,opus-64");
    ASSERT_FALSE(good_id_.empty());
    good_job_ = WaitForEnd(good_id_);
    ASSERT_EQ(JsonStr(good_job_, {"state"}), "done") << boost::json::serialize(good_job_);
  }

  // The process still answers, and the earlier job and every file of it are intact.
  void ExpectEarlierWorkIntact() {
    SCOPED_TRACE("the earlier done job");
    EXPECT_EQ(Transcoder("GET", "/health").status, 200);
    EXPECT_EQ(Streamer("/health").status, 200);
    const boost::json::value job = GetJob(good_id_);
    EXPECT_EQ(JsonStr(job, {"state"}), "done");
    ASSERT_TRUE(JsonAt(job, {"result"}) && JsonAt(good_job_, {"result"}));
    EXPECT_EQ(boost::json::serialize(*JsonAt(job, {"result"})), boost::json::serialize(*JsonAt(good_job_, {"result"})));
    const std::string original = ExpectStreams(JsonStr(good_job_, {"result", "original", "file_id"}),
                                               good_input_.size(), "audio/flac", "flac", 1.9);
    EXPECT_TRUE(original == good_input_);
    ExpectRenditionsStream(good_job_, 1.8);
  }

  // Submits `bytes`; the job must fail with a named error and a message, and publish nothing.
  boost::json::value ExpectFails(const std::string& bytes, const std::string& what) {
    SCOPED_TRACE(what);
    const std::string id = SubmitOk(bytes, "&renditions=mp3-128");
    if (id.empty()) return nullptr;
    const boost::json::value job = WaitForEnd(id);
    EXPECT_EQ(JsonStr(job, {"state"}), "failed") << boost::json::serialize(job);
    EXPECT_NE(JsonStr(job, {"error", "error"}), "<missing>") << boost::json::serialize(job);
    EXPECT_NE(JsonStr(job, {"error", "error"}), "Internal") << "bad input is the client's fault: "
                                                             << boost::json::serialize(job);
    EXPECT_GT(JsonStr(job, {"error", "message"}).size(), 10u) << boost::json::serialize(job);
    EXPECT_TRUE(JsonAt(job, {"result"}) && JsonAt(job, {"result"})->is_null());
    EXPECT_EQ(Streamer("/v1/tracks/" + JsonStr(job, {"input", "file_id"}), StreamerAdmin()).status, 404);
    EXPECT_TRUE(GoneSoon(transcoder_dir() / "work" / id)) << "the job's work folder must be removed";
    return job;
  }

  // Submits `bytes`; the job must end (done or failed, never stuck or crashing the process).
  boost::json::value ExpectEnds(const std::string& bytes, const std::string& what) {
    SCOPED_TRACE(what);
    const std::string id = SubmitOk(bytes, "&renditions=mp3-128");
    if (id.empty()) return nullptr;
    const boost::json::value job = WaitForEnd(id);
    const std::string state = JsonStr(job, {"state"});
    EXPECT_TRUE(state == "done" || state == "failed") << boost::json::serialize(job);
    if (state == "failed") {
      EXPECT_GT(JsonStr(job, {"error", "message"}).size(), 10u);
    }
    EXPECT_EQ(Transcoder("GET", "/health").status, 200);
    return job;
  }

  std::size_t StoredUploads() {
    std::size_t n = 0;
    for (const auto& e : tfs::recursive_directory_iterator(transcoder_dir() / "uploads")) {
      n += e.is_regular_file() && e.path().parent_path().filename() != ".tmp";
    }
    return n;
  }

  std::string good_input_;
  std::string other_input_;
  std::string good_id_;
  boost::json::value good_job_;
};

std::string MessageOf(const boost::json::value& job) { return JsonStr(job, {"error", "message"}); }

tfs::path LongFlac() { return MakeSine("long-60s.flac", 60, 44100, 2, {"-c:a", "flac", "-f", "flac"}); }

TEST_F(TranscoderBadInputTest, AnEmptyBodyIsRefused) {
  const auto before = ListJobIds();
  HttpResult r = Submit("");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(JsonStr(ParseJson(r.body), {"error"}), "EmptyUpload") << r.body;
  EXPECT_EQ(ListJobIds(), before);
  EXPECT_TRUE(tfs::is_empty(transcoder_dir() / "uploads" / ".tmp"));
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, WhatIsNotAudioFailsClearly) {
  const boost::json::value text = ExpectFails(std::string(4000, 'a') + "\nthis is a text file, not audio\n", "text");
  EXPECT_NE(MessageOf(text).find("not a media file"), std::string::npos) << MessageOf(text);
  const std::string events = EventStream(JsonStr(text, {"id"}), std::chrono::seconds(10));
  EXPECT_NE(events.find("event: failed\n"), std::string::npos) << events;

  const std::string png = ReadBytes(MakeMedia("red.png", {"-f", "lavfi", "-i", "color=red:s=16x16", "-frames:v", "1"}));
  ASSERT_FALSE(png.empty());
  EXPECT_NE(MessageOf(ExpectFails(png, "png")).find("no audio"), std::string::npos);

  const std::string mp4 = ReadBytes(MakeMedia(
      "video-only.mp4", {"-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=10", "-pix_fmt", "yuv420p"}));
  ASSERT_FALSE(mp4.empty());
  EXPECT_NE(MessageOf(ExpectFails(mp4, "mp4 without audio")).find("no audio"), std::string::npos);

  const std::string webm = ReadBytes(MakeMedia(
      "video-only.webm", {"-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=10", "-c:v", "libvpx"}));
  ASSERT_FALSE(webm.empty());
  EXPECT_NE(MessageOf(ExpectFails(webm, "webm without audio")).find("no audio"), std::string::npos);

  std::mt19937 rng(7);
  std::string noise(50000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  ExpectFails(noise, "random bytes");

  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, TruncatedFilesEndCleanly) {
  for (const auto& [name, make] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"five.mp3", {"-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"}},
           {"five.flac", {"-c:a", "flac", "-f", "flac"}}}) {
    const std::string whole = ReadBytes(MakeSine(name, 5, 44100, 2, make));
    const boost::json::value job = ExpectEnds(whole.substr(0, whole.size() * 3 / 10), "30% of " + name);
    if (JsonStr(job, {"state"}) == "done") {
      const double ms = JsonNum(job, {"result", "facts", "duration_ms"});
      EXPECT_GT(ms, 0) << name;
      EXPECT_LT(ms, 3000) << name << ": a cut file is shorter";
      ExpectRenditionsStream(job, ms / 1000 * 0.9);
    }
  }
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, ACorruptMiddleIsCountedOrRefused) {
  std::string mp3 = ReadBytes(MakeSine("five.mp3", 5, 44100, 2, {"-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"}));
  ASSERT_GT(mp3.size(), 10000u);
  std::mt19937 rng(11);
  for (std::size_t i = mp3.size() * 4 / 10; i < mp3.size() * 6 / 10; ++i) mp3[i] = static_cast<char>(rng());
  const boost::json::value job = ExpectEnds(mp3, "mp3 with 20% random bytes in the middle");
  if (JsonStr(job, {"state"}) == "done") {
    EXPECT_GT(JsonNum(job, {"result", "facts", "decode_errors"}), 0) << boost::json::serialize(job);
    ExpectRenditionsStream(job, 2.0);
  }
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, AHeaderClaimingHoursIsNotBelieved) {
  // 4 GB of samples promised, one second delivered.
  const auto started = std::chrono::steady_clock::now();
  const boost::json::value job = ExpectEnds(WavFile(0xfffffff0u, SineSamples(1.0)), "a 4 GB WAV header");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  if (JsonStr(job, {"state"}) == "done") {
    EXPECT_NEAR(JsonNum(job, {"result", "facts", "duration_ms"}), 1000, 50);
    for (const auto& r : JsonAt(job, {"result", "renditions"})->as_array()) {
      EXPECT_LT(JsonNum(r, {"size"}), 200000) << "the renditions hold one second";
    }
  }
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, AudioLongerThanTheLimitFails) {
  ASSERT_NO_FATAL_FAILURE(RestartCombined({"--transcoder-max-duration-s", "2"}));
  const std::string five = ReadBytes(MakeSine("five.flac", 5, 44100, 2, {"-c:a", "flac", "-f", "flac"}));
  const boost::json::value job = ExpectFails(five, "5 s past a 2 s limit");
  EXPECT_EQ(JsonStr(job, {"error", "error"}), "ResourceExhausted");
  EXPECT_NE(MessageOf(job).find("limit of 2 s"), std::string::npos) << MessageOf(job);
  // A job within the limit still runs.
  const std::string id = SubmitOk(other_input_, "&renditions=opus-64");
  EXPECT_EQ(JsonStr(WaitForEnd(id), {"state"}), "done");
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, ZeroSecondFilesFail) {
  EXPECT_NE(MessageOf(ExpectFails(WavFile(0, ""), "a WAV with a header and no samples")).find("no audio"),
            std::string::npos);
  const std::string flac = ReadBytes(MakeMedia("zero.flac", {"-f", "lavfi", "-i", "sine=duration=1", "-t", "0",
                                                             "-c:a", "flac", "-f", "flac"}));
  if (flac.empty()) {
    EXPECT_EQ(Submit(flac).status, 400);
  } else {
    ExpectFails(flac, "ffmpeg -t 0 to FLAC");
  }
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, AnUndecodableCodecFails) {
  // A well-formed WAV whose format tag (0x1234) no decoder knows.
  const std::string samples = SineSamples(1.0);
  const boost::json::value job = ExpectFails(WavFile(static_cast<std::uint32_t>(samples.size()), samples, 0x1234),
                                             "a WAV with an unknown codec");
  EXPECT_EQ(JsonStr(job, {"error", "error"}), "Unimplemented");
  EXPECT_NE(MessageOf(job).find("not supported"), std::string::npos) << MessageOf(job);
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, AClientVanishingMidUploadLeavesNothing) {
  const auto before = ListJobIds();
  const std::size_t uploads_before = StoredUploads();
  const tfs::path tmp = transcoder_dir() / "uploads" / ".tmp";
  {
    RawConnection c(transcoder_port_);
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.Send("POST /v1/jobs?owner_did=did%3Aplc%3Aartist HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
                       "Bearer " +
                       token_ + "\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n" +
                       std::string(100 * 1024, 'z')));
    // The server has started storing the upload before the client goes.
    const auto started = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (tfs::is_empty(tmp) && std::chrono::steady_clock::now() < started) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_FALSE(tfs::is_empty(tmp)) << "the upload was never being stored";
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!tfs::is_empty(tmp) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(tfs::is_empty(tmp)) << "the half upload must be removed";
  EXPECT_EQ(ListJobIds(), before) << "no job for an upload that never completed";
  EXPECT_EQ(StoredUploads(), uploads_before);
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, MoreJobsThanTheQueueHoldsGet429) {
  ASSERT_NO_FATAL_FAILURE(RestartCombined({"--transcoder-queue-limit", "1", "--transcoder-max-running-jobs", "1"}));
  const std::string running = SubmitOk(ReadBytes(LongFlac()));
  ASSERT_FALSE(running.empty());
  // Claimed from the queue a moment after its 202: until then it is the one waiting.
  WaitUntil(running, [](const boost::json::value& job) { return JsonStr(job, {"state"}) == "running"; });
  const std::string waiting = SubmitOk(other_input_, "&renditions=opus-64");
  ASSERT_FALSE(waiting.empty());
  EXPECT_EQ(JsonStr(GetJob(waiting), {"state"}), "queued");

  HttpResult full = Submit(other_input_, "&renditions=mp3-128");
  EXPECT_EQ(full.status, 429) << full.transport_error << " " << full.body;
  EXPECT_EQ(JsonStr(ParseJson(full.body), {"error"}), "QueueFull") << full.body;
  EXPECT_GT(std::atoi(full.Header("retry-after").c_str()), 0) << "Retry-After: " << full.Header("retry-after");

  // Cancelling the waiting job frees its place (200: it never ran).
  HttpResult cancel_waiting = Transcoder("DELETE", "/v1/jobs/" + waiting, Admin());
  EXPECT_EQ(cancel_waiting.status, 200) << cancel_waiting.body;
  EXPECT_EQ(JsonStr(ParseJson(cancel_waiting.body), {"state"}), "cancelled");
  EXPECT_EQ(JsonStr(GetJob(waiting), {"state"}), "cancelled");
  const std::string next = SubmitOk(other_input_, "&renditions=mp3-128");
  ASSERT_FALSE(next.empty());

  // Cancelling the running one (202: it stops at its next chunk) lets the next one run.
  HttpResult cancel_running = Transcoder("DELETE", "/v1/jobs/" + running, Admin());
  EXPECT_EQ(cancel_running.status, 202) << cancel_running.body;
  EXPECT_EQ(JsonStr(WaitForEnd(running), {"state"}), "cancelled");
  EXPECT_EQ(JsonStr(WaitForEnd(next), {"state"}), "done");
  EXPECT_EQ(ListJobIds().size(), 4u) << "the refused submission made no job";
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, CancellingARunningJobPublishesNothing) {
  const std::string id = SubmitOk(ReadBytes(LongFlac()));
  ASSERT_FALSE(id.empty());
  WaitForProgress(id);
  HttpResult cancel = Transcoder("DELETE", "/v1/jobs/" + id, Admin());
  EXPECT_EQ(cancel.status, 202) << cancel.body;
  const boost::json::value job = WaitForEnd(id);
  EXPECT_EQ(JsonStr(job, {"state"}), "cancelled") << boost::json::serialize(job);
  EXPECT_EQ(JsonStr(job, {"error", "error"}), "Cancelled");
  EXPECT_TRUE(JsonAt(job, {"result"}) && JsonAt(job, {"result"})->is_null());
  const std::string input_id = JsonStr(job, {"input", "file_id"});
  EXPECT_EQ(Streamer("/v1/tracks/" + input_id, StreamerAdmin()).status, 404) << "no track for a cancelled job";
  EXPECT_EQ(Streamer("/audio/" + input_id).status, 404);
  EXPECT_EQ(Transcoder("DELETE", "/v1/jobs/" + id, Admin()).status, 409);
  EXPECT_TRUE(GoneSoon(transcoder_dir() / "work" / id));
  const std::string events = EventStream(id, std::chrono::seconds(10));
  EXPECT_NE(events.find("event: cancelled\n"), std::string::npos) << events;
  const auto cancelled = ListJobIds("?state=cancelled");
  EXPECT_EQ(cancelled, std::vector<std::string>{id});
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, KillNineMidRunThenRestartFinishesTheJobOnce) {
  const std::string id = SubmitOk(ReadBytes(LongFlac()));
  ASSERT_FALSE(id.empty());
  WaitForProgress(id);
  process_->Kill();
  ASSERT_NO_FATAL_FAILURE(StartCombined());  // the same data folder

  const boost::json::value job = WaitForEnd(id, std::chrono::seconds(90));
  ASSERT_EQ(JsonStr(job, {"state"}), "done") << boost::json::serialize(job);
  EXPECT_EQ(JsonNum(job, {"attempts"}), 2) << "run once before the kill, once after";
  const auto done = ListJobIds("?state=done");
  EXPECT_EQ(std::count(done.begin(), done.end(), id), 1);
  EXPECT_EQ(ListJobIds().size(), 2u);
  EXPECT_TRUE(ListJobIds("?state=running").empty());
  EXPECT_TRUE(ListJobIds("?state=queued").empty());
  EXPECT_NEAR(JsonNum(job, {"result", "facts", "duration_ms"}), 60000, 100);
  ExpectRenditionsStream(job, 59);
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, SigtermMidRunExitsCleanlyAndTheJobRunsAgain) {
  const std::string id = SubmitOk(ReadBytes(LongFlac()));
  ASSERT_FALSE(id.empty());
  WaitForProgress(id);
  const auto stopping = std::chrono::steady_clock::now();
  EXPECT_EQ(process_->Stop(), 0) << process_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, std::chrono::seconds(10))
      << "shutdown must not wait for the job";
  ASSERT_NO_FATAL_FAILURE(StartCombined());
  const boost::json::value job = WaitForEnd(id, std::chrono::seconds(90));
  EXPECT_EQ(JsonStr(job, {"state"}), "done") << "a shutdown is not a cancellation: " << boost::json::serialize(job);
  EXPECT_EQ(JsonNum(job, {"attempts"}), 2);
  ExpectEarlierWorkIntact();
}

TEST_F(TranscoderBadInputTest, AFullDiskIsAnHttpErrorNotACrash) {
  // Every file the process writes is limited to 1 MiB (RLIMIT_FSIZE; writes past it fail with
  // EFBIG, as on a full disk).
  constexpr std::uint64_t kLimit = 1 << 20;
  ASSERT_NO_FATAL_FAILURE(RestartCombined({}, kLimit));
  const auto before = ListJobIds();
  {
    RawConnection c(transcoder_port_);
    ASSERT_TRUE(c.connected());
    const std::string body(kLimit + 200 * 1024, 'q');
    // The server may answer and close before it has read everything: ignore a failed send.
    c.Send("POST /v1/jobs?owner_did=did%3Aplc%3Aartist HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
           token_ + "\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body);
    const std::string answer = c.ReadUntilClose(std::chrono::seconds(20));
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 507") || answer.starts_with("HTTP/1.1 413")) << answer.substr(0, 400);
    EXPECT_TRUE(answer.find("\"error\":\"StorageError\"") != std::string::npos ||
                answer.find("\"error\":\"PayloadTooLarge\"") != std::string::npos)
        << answer.substr(0, 400);
  }
  // The drop-in answers as the Rust service did (docs/transcoder.md): 500 "io error: <cause>".
  {
    RawConnection c(transcoder_port_);
    ASSERT_TRUE(c.connected());
    const std::string boundary = "full-disk-boundary";
    const std::string form = "--" + boundary +
                             "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n\r\n" +
                             std::string(kLimit + 200 * 1024, 'q') + "\r\n--" + boundary + "--\r\n";
    c.Send("POST /transcode?target=mp3 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Transcoder-Key: " + token_ +
           "\r\nContent-Type: multipart/form-data; boundary=" + boundary +
           "\r\nContent-Length: " + std::to_string(form.size()) + "\r\n\r\n" + form);
    const std::string answer = c.ReadUntilClose(std::chrono::seconds(20));
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 500")) << answer.substr(0, 400);
    EXPECT_NE(answer.find("\"error\":\"io error: cannot write the upload: File too large\""), std::string::npos)
        << answer.substr(0, 400);
  }
  EXPECT_EQ(Transcoder("GET", "/health").status, 200);
  EXPECT_EQ(ListJobIds(), before);
  EXPECT_TRUE(tfs::is_empty(transcoder_dir() / "uploads" / ".tmp"));
  EXPECT_EQ(Transcoder("GET", "/health").status, 200);
  // Renditions that outgrow the disk fail the job with a message that says so.
  const std::string thirty = ReadBytes(MakeSine("thirty-s.flac", 30, 44100, 2, {"-c:a", "flac", "-f", "flac"}));
  ASSERT_LT(thirty.size(), kLimit / 2);
  const std::string big = SubmitOk(thirty, "&renditions=mp3-320");  // about 1.2 MB of MP3
  const boost::json::value failed = WaitForEnd(big);
  EXPECT_EQ(JsonStr(failed, {"state"}), "failed") << boost::json::serialize(failed);
  EXPECT_EQ(JsonStr(failed, {"error", "error"}), "ResourceExhausted") << boost::json::serialize(failed);
  EXPECT_NE(MessageOf(failed).find("disk is full"), std::string::npos) << MessageOf(failed);
  EXPECT_TRUE(GoneSoon(transcoder_dir() / "work" / big));
  // Small work still fits and still runs.
  const std::string id = SubmitOk(other_input_, "&renditions=opus-64");
  EXPECT_EQ(JsonStr(WaitForEnd(id), {"state"}), "done");
  ExpectEarlierWorkIntact();
}

}  // namespace
}  // namespace plyr::testing
