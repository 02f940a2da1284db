// The transcoder end to end: the real plyr-core binary on OS-chosen loopback ports, alone or
// beside a streamer, spoken to over HTTP; inputs made with the ffmpeg CLI and outputs checked
// with ffprobe. Every wait is bounded.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "common/http_server.h"
#include "tests/support/drain.h"
#include "tests/support/media_test_util.h"
#include "tests/support/process.h"
#include "tests/support/test_http_client.h"

namespace plyr::testing {

namespace tfs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// A loopback receiver for job callbacks

// Records every POST /cb (headers and body) and answers 500 to the first `failures` of them,
// 200 after. Runs our own HTTP server on a background thread.
class CallbackReceiver {
 public:
  struct Delivery {
    std::string job;
    std::string timestamp;
    std::string signature;
    std::string content_type;
    std::string body;
    int answered = 0;
  };

  explicit CallbackReceiver(int failures)
      : runtime_(std::make_unique<Runtime>(RuntimeOptions{1, ThreadModel::kPerCore})),
        metrics_(std::make_unique<MetricsRegistry>()),
        failures_(failures) {
    Router router;
    router.Add(http::verb::post, "/cb", [this](Request& request) -> asio::awaitable<Response> {
      Delivery d;
      d.job = std::string(request.Field("X-Plyr-Job"));
      d.timestamp = std::string(request.Field("X-Plyr-Timestamp"));
      d.signature = std::string(request.Field("X-Plyr-Signature"));
      d.content_type = std::string(request.Field(http::field::content_type));
      auto body = co_await request.ReadAll(1 << 20);
      if (auto* text = std::get_if<std::string>(&body)) d.body = std::move(*text);
      bool fail;
      {
        std::lock_guard lock(mutex_);
        fail = static_cast<int>(deliveries_.size()) < failures_;
        d.answered = fail ? 500 : 200;
        deliveries_.push_back(std::move(d));
      }
      if (fail) co_return ErrorResponse(http::status::internal_server_error, "Boom", "try again");
      co_return JsonResponse(http::status::ok, json::object{{"ok", true}});
    });
    HttpServerOptions options;
    options.service = "callback-receiver";
    options.access_log = false;
    auto server = HttpServer::Create(*runtime_, {asio::ip::make_address("127.0.0.1"), 0}, std::move(router), options,
                                     *metrics_);
    server_ = std::move(server.value());
    server_->Start();
    thread_ = std::thread([this] { runtime_->Run(); });
  }

  ~CallbackReceiver() {
    DrainAndStop(*server_, *runtime_);
    thread_.join();
  }

  CallbackReceiver(const CallbackReceiver&) = delete;
  CallbackReceiver& operator=(const CallbackReceiver&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()) + "/cb"; }

  std::vector<Delivery> deliveries() const {
    std::lock_guard lock(mutex_);
    return deliveries_;
  }

  // Waits (bounded) until at least `n` deliveries arrived; returns them.
  std::vector<Delivery> WaitFor(std::size_t n, std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto got = deliveries();
      if (got.size() >= n || std::chrono::steady_clock::now() >= deadline) return got;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

 private:
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  const int failures_;
  mutable std::mutex mutex_;
  std::vector<Delivery> deliveries_;  // guarded by mutex_
};

// ---------------------------------------------------------------------------------------------
// The fixture

class TranscoderTest : public ::testing::Test {
 protected:
  static constexpr const char* kOwner = "did:plc:artist";
  static constexpr std::chrono::seconds kJobDeadline{60};

  // One process with the streamer and the transcoder (the transcoder publishes to the streamer
  // beside it).
  void StartCombined(const std::vector<std::string>& extra = {}, std::uint64_t file_size_limit = 0) {
    if (!process_) process_ = std::make_unique<PlyrProcess>(dir_.path() / "data");
    process_->set_file_size_limit(file_size_limit);
    std::vector<std::string> args = {"streamer", "transcoder", "--http-drain-timeout-ms", "2000"};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(process_->StartServe(args)) << process_->log();
    transcoder_port_ = process_->port("transcoder");
    streamer_port_ = process_->port("streamer");
    token_ = process_->admin_token();
    streamer_token_ = token_;
    ASSERT_NE(transcoder_port_, 0);
    ASSERT_NE(streamer_port_, 0);
  }

  // A transcoder process alone, publishing to `streamer_url` (which may be unreachable).
  void StartTranscoderAlone(const std::string& streamer_url, const std::string& streamer_token,
                            const std::vector<std::string>& extra = {}) {
    if (!process_) process_ = std::make_unique<PlyrProcess>(dir_.path() / "transcoder-data");
    std::vector<std::string> args = {"transcoder", "--http-drain-timeout-ms", "2000", "--transcoder-streamer-url",
                                     streamer_url, "--transcoder-streamer-token", streamer_token};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(process_->StartServe(args)) << process_->log();
    transcoder_port_ = process_->port("transcoder");
    token_ = process_->admin_token();
    ASSERT_NE(transcoder_port_, 0);
    EXPECT_EQ(process_->port("streamer"), 0) << "the transcoder process must not run a streamer";
  }

  // A streamer process and a transcoder process pointed at it, each with its own data folder
  // (so their admin tokens differ).
  void StartSeparate(const std::vector<std::string>& transcoder_extra = {}) {
    streamer_process_ = std::make_unique<PlyrProcess>(dir_.path() / "streamer-data");
    ASSERT_TRUE(streamer_process_->StartServe({"streamer", "--http-drain-timeout-ms", "2000"}))
        << streamer_process_->log();
    streamer_port_ = streamer_process_->port("streamer");
    streamer_token_ = streamer_process_->admin_token();
    ASSERT_NE(streamer_port_, 0);
    EXPECT_EQ(streamer_process_->port("transcoder"), 0);
    StartTranscoderAlone("http://127.0.0.1:" + std::to_string(streamer_port_), streamer_token_, transcoder_extra);
    ASSERT_NE(token_, streamer_token_);
  }

  // Stops (SIGTERM) and starts again on the same data folder.
  void RestartCombined(const std::vector<std::string>& extra = {}, std::uint64_t file_size_limit = 0) {
    process_->Stop();
    StartCombined(extra, file_size_limit);
  }

  tfs::path transcoder_dir() const { return process_->data_dir() / "transcoder"; }

  Headers Admin() const { return {{"Authorization", "Bearer " + token_}}; }
  Headers StreamerAdmin() const { return {{"Authorization", "Bearer " + streamer_token_}}; }

  HttpResult Transcoder(const std::string& method, const std::string& target, const Headers& headers = {},
                        const std::string& body = {}, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return Fetch(transcoder_port_, method, target, headers, body, timeout);
  }
  HttpResult Streamer(const std::string& target, const Headers& headers = {}) {
    return Fetch(streamer_port_, "GET", target, headers, {}, std::chrono::seconds(30));
  }

  // POST /v1/jobs with the audio as the body.
  HttpResult Submit(const std::string& body, const std::string& query = "",
                    const std::string& content_type = "application/octet-stream") {
    Headers h = Admin();
    h.emplace_back("Content-Type", content_type);
    return Transcoder("POST", "/v1/jobs?owner_did=" + UrlEncode(kOwner) + query, h, body);
  }

  // Submit, expecting 202; returns the job id (empty on failure, which is recorded).
  std::string SubmitOk(const std::string& body, const std::string& query = "",
                       const std::string& content_type = "application/octet-stream") {
    HttpResult r = Submit(body, query, content_type);
    EXPECT_EQ(r.status, 202) << r.transport_error << " " << r.body;
    const boost::json::value doc = ParseJson(r.body);
    const std::string id = JsonStr(doc, {"id"});
    if (r.status != 202 || !IsLowerHex(id, 24)) {
      ADD_FAILURE() << "no job id in " << r.body;
      return {};
    }
    EXPECT_EQ(JsonStr(doc, {"state"}), "queued");
    EXPECT_EQ(r.Header("location"), "/v1/jobs/" + id);
    return id;
  }

  boost::json::value GetJob(const std::string& id) {
    HttpResult r = Transcoder("GET", "/v1/jobs/" + id, Admin());
    EXPECT_EQ(r.status, 200) << r.transport_error << " " << r.body;
    return ParseJson(r.body);
  }

  // Polls the job until `done(job)` holds or the deadline passes (a recorded failure).
  template <typename Pred>
  boost::json::value WaitUntil(const std::string& id, Pred done, std::chrono::milliseconds deadline = kJobDeadline,
                               const char* what = "the awaited state") {
    const auto until = std::chrono::steady_clock::now() + deadline;
    boost::json::value job;
    while (std::chrono::steady_clock::now() < until) {
      HttpResult r = Transcoder("GET", "/v1/jobs/" + id, Admin());
      if (r.status == 200) {
        job = ParseJson(r.body);
        if (done(job)) return job;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << "job " << id << " did not reach " << what << " in time; last: " << boost::json::serialize(job);
    return job;
  }

  // Waits for a terminal state (done, failed or cancelled).
  boost::json::value WaitForEnd(const std::string& id, std::chrono::milliseconds deadline = kJobDeadline) {
    return WaitUntil(
        id,
        [](const boost::json::value& job) {
          const std::string state = JsonStr(job, {"state"});
          return state == "done" || state == "failed" || state == "cancelled";
        },
        deadline, "a terminal state");
  }

  // Waits until the job runs and has made progress (so a cancel or a kill lands mid-run).
  boost::json::value WaitForProgress(const std::string& id) {
    return WaitUntil(
        id,
        [](const boost::json::value& job) {
          return JsonStr(job, {"state"}) == "running" && JsonNum(job, {"progress"}) > 0;
        },
        kJobDeadline, "running with progress");
  }

  // The ids GET /v1/jobs lists (newest first).
  std::vector<std::string> ListJobIds(const std::string& query = "") {
    HttpResult r = Transcoder("GET", "/v1/jobs" + query, Admin());
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> ids;
    const boost::json::value doc = ParseJson(r.body);
    const boost::json::value* jobs = JsonAt(doc, {"jobs"});
    if (!jobs || !jobs->is_array()) {
      ADD_FAILURE() << "no jobs array in " << r.body;
      return ids;
    }
    for (const auto& job : jobs->as_array()) ids.push_back(JsonStr(job, {"id"}));
    return ids;
  }

  // True once `path` no longer exists (a job's folder is removed just after its end is visible).
  static bool GoneSoon(const tfs::path& path, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (tfs::exists(path)) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  // GET /v1/jobs/{id}/events until the server ends the stream (bounded); the raw bytes.
  std::string EventStream(const std::string& id, std::chrono::milliseconds timeout = kJobDeadline,
                          bool* closed = nullptr) {
    RawConnection connection(transcoder_port_);
    if (!connection.connected() ||
        !connection.Send("GET /v1/jobs/" + id + "/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                         token_ + "\r\nAccept: text/event-stream\r\n\r\n")) {
      ADD_FAILURE() << "cannot ask for the events of " << id;
      return {};
    }
    return connection.ReadUntilClose(timeout, closed);
  }

  // Checks one file the streamer serves: a Range request gets exactly the asked bytes, the whole
  // file is `size` bytes of `content_type` that ffprobe reads as `codec` for at least
  // `min_seconds` and that decode without an error. Returns the bytes.
  std::string ExpectStreams(const std::string& file_id, std::uint64_t size, const std::string& content_type,
                            const std::string& codec, double min_seconds, int channels = 0) {
    SCOPED_TRACE("file " + file_id + " (" + codec + ")");
    EXPECT_TRUE(IsLowerHex(file_id, 16)) << file_id;
    const std::uint64_t last = std::min<std::uint64_t>(size, 1000) - 1;
    HttpResult range = Streamer("/audio/" + file_id, {{"Range", "bytes=0-999"}});
    if (range.status != 206) {
      ADD_FAILURE() << "GET /audio/" << file_id << " with a Range: " << range.status << " " << range.body;
      return {};
    }
    EXPECT_EQ(range.body.size(), last + 1);
    EXPECT_EQ(range.Header("content-range"), "bytes 0-" + std::to_string(last) + "/" + std::to_string(size));
    HttpResult whole = Streamer("/audio/" + file_id);
    EXPECT_EQ(whole.status, 200) << whole.transport_error;
    EXPECT_EQ(whole.body.size(), size);
    EXPECT_EQ(whole.Header("content-type"), content_type);
    EXPECT_EQ(whole.body.substr(0, range.body.size()), range.body);
    const tfs::path file = dir_.path() / ("streamed-" + file_id);
    WriteBytes(file, whole.body);
    const Probe probe = ProbeFile(file);
    EXPECT_TRUE(probe.ok) << probe.raw;
    EXPECT_EQ(probe.codec, codec) << probe.raw;
    EXPECT_GE(probe.duration_s, min_seconds) << probe.raw;
    if (channels > 0) {
      EXPECT_EQ(probe.channels, channels) << probe.raw;
    }
    EXPECT_EQ(DecodeErrors(file), "");
    return whole.body;
  }

  // Every rendition of a done job streams and decodes as its entry says.
  void ExpectRenditionsStream(const boost::json::value& job, double min_seconds) {
    const boost::json::value* renditions = JsonAt(job, {"result", "renditions"});
    ASSERT_TRUE(renditions && renditions->is_array() && !renditions->as_array().empty())
        << boost::json::serialize(job);
    for (const auto& r : renditions->as_array()) {
      ExpectStreams(JsonStr(r, {"file_id"}), static_cast<std::uint64_t>(JsonNum(r, {"size"})),
                    JsonStr(r, {"content_type"}), JsonStr(r, {"codec"}), min_seconds,
                    static_cast<int>(JsonNum(r, {"channels"})));
    }
  }

  TempDir dir_;
  std::unique_ptr<PlyrProcess> process_;           // the transcoder (and, combined, the streamer)
  std::unique_ptr<PlyrProcess> streamer_process_;  // the streamer, when it runs apart
  unsigned short transcoder_port_ = 0;
  unsigned short streamer_port_ = 0;
  std::string token_;
  std::string streamer_token_;
};

}  // namespace plyr::testing
