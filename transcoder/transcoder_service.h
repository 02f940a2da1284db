// TranscoderService: durable transcode jobs over HTTP, and the drop-in for plyr.fm's Rust
// transcoder.
//
// Routes (docs/transcoder.md has the full contract):
//   POST   /v1/jobs                 token: upload (the body) or {"file_id"} -> 202 {"id"}
//   GET    /v1/jobs[?state=&limit=] token: newest first
//   GET    /v1/jobs/{id}            token: state, progress, result, error
//   GET    /v1/jobs/{id}/events     token: progress as server-sent events until the job ends
//   DELETE /v1/jobs/{id}            token: cancel
//   POST   /transcode?target=mp3|wav|m4a   X-Transcoder-Key or token: multipart `file` -> bytes
//
// A job: the upload is stored (content-addressed, fsynced) and the job row committed before the
// 202; a bounded queue feeds at most `max_running_jobs` runners; each decodes once and encodes the
// ladder on the shared encoder pool (TranscodeRequest), then uploads the original and every
// rendition to the streamer and registers them as one track over the streamer's HTTP API, then
// (when a fingerprint service is configured and the job did not opt out) asks it whether the
// audio matches a known work, fingerprinted in the same decode, and labels a flagged track on
// the labeler; then records the result and calls the submitter back (HMAC-signed, retried).
//
// Threads: handlers and runners are coroutines on the I/O threads; encoding (and fingerprinting)
// runs on the encoder pool and every SQLite write or fsync on a small blocking pool, never on an
// I/O thread. Other services (streamer, fingerprint, labeler) are called over HTTP only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include <CLI/CLI.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include "common/blob_store.h"
#include "common/pg_listener.h"
#include "common/service_env.h"
#include "common/settings.h"
#include "common/status.h"
#include "transcoder/job_store.h"
#include "transcoder/rendition.h"
#include "transcoder/transcode.h"

namespace plyr::transcoder {

struct TranscoderSettings {
  std::string listen = "127.0.0.1:8430";
  unsigned workers = 0;  // encoder threads; 0: one per core
  std::string renditions = "mp3-320,mp3-128,aac-256,opus-128,opus-64";
  std::uint64_t upload_max_bytes = 1536ull << 20;
  std::int64_t max_duration_s = 4 * 3600;
  std::int64_t job_timeout_s = 1800;
  std::uint64_t max_running_jobs = 2;
  std::uint64_t queue_limit = 64;
  std::string streamer_url;    // empty: the streamer of this process, else http://127.0.0.1:8410
  std::string streamer_token;  // empty: this process's admin token
  std::int64_t streamer_timeout_ms = 120'000;
  std::string callback_key;    // empty: <data>/transcoder/callback-key (generated)
  std::int64_t callback_attempts = 8;
  std::int64_t lease_ms = 30'000;  // a running job's claim, renewed every third of it
  std::string drop_in_key;     // X-Transcoder-Key for POST /transcode; empty: the admin token
  // The copyright stage (docs/transcoder.md). Off while fingerprint_url is empty.
  std::string fingerprint_url;    // the fingerprint service (POST /v1/match); main.cpp fills in a local one
  std::string fingerprint_token;  // empty: this process's admin token
  std::string fingerprint_speeds = "1,0.98,1.02";  // speed variants fingerprinted (media::ParseSpeedList)
  bool label_flagged = false;     // emit a label for a flagged track that has a track_uri
  std::string label_value = "copyright-violation";
  std::string labeler_url;        // the labeler (POST /emit-label); main.cpp fills in a local one
  std::string labeler_token;      // empty: this process's admin token
};

// Registers the transcoder's settings (transcoder.*) on `command`.
void AddTranscoderSettings(CLI::App& command, const SettingsFile& file, TranscoderSettings& settings);

class TranscoderService final : public Service {
 public:
  // Opens the job database and the upload store under <data>/transcoder, binds the listener (not
  // yet accepting) and queues the jobs a previous run left unfinished.
  static StatusOr<std::unique_ptr<TranscoderService>> Create(ServiceEnv& env, const TranscoderSettings& settings);
  ~TranscoderService() override;

  std::string_view name() const override { return "transcoder"; }
  HttpServer& server() override { return *server_; }

 private:
  struct ActiveJob;

  TranscoderService(ServiceEnv& env, const TranscoderSettings& settings);
  Router BuildRouter();

  asio::awaitable<Response> SubmitJob(Request& request);
  asio::awaitable<Response> GetJob(Request& request);
  asio::awaitable<Response> ListJobs(Request& request);
  asio::awaitable<Response> CancelJob(Request& request);
  asio::awaitable<Response> JobEvents(Request& request);
  asio::awaitable<Response> DropInTranscode(Request& request);

  // Claims queued jobs (ClaimJobs) while fewer than max_running_jobs run here.
  void PumpLocked();
  asio::awaitable<void> ClaimJobs();
  // Renews the leases of the jobs running here every third of a lease (stopping those cancelled
  // elsewhere or lost), pumps, and takes over callbacks an instance that died still owed.
  asio::awaitable<void> KeepLeases();
  void RefreshQueueGauge();
  asio::awaitable<void> RunJob(std::shared_ptr<ActiveJob> job);
  // Runs a transcode on the encoder pool and resumes on the caller's executor.
  asio::awaitable<StatusOr<TranscodeResult>> RunTranscode(TranscodeRequest request);
  // Uploads the original and the renditions and registers the track; the job's result JSON.
  asio::awaitable<StatusOr<boost::json::object>> Publish(const JobRecord& record, const std::filesystem::path& input,
                                                         const TranscodeResult& result);
  // Downloads a file the streamer stores (a job naming it by file_id) to `into`.
  asio::awaitable<Status> FetchFromStreamer(const std::string& file_id, const std::filesystem::path& into);

  // A service this one calls over HTTP.
  struct Peer {
    std::string name;   // "streamer", "fingerprint service", "labeler": for messages
    std::string url;    // base URL without a trailing slash; empty: not configured
    std::string token;  // its admin token, sent as `Authorization: Bearer`
  };
  struct CallOptions {
    int attempts = 5;
    std::chrono::milliseconds timeout{30'000};  // of one try
    // No try starts, nor lasts, past it (a job's deadline).
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  };
  // Sends `request` (its url a path on `peer`) with the peer's token, trying again, backing off
  // (1 s, 2 s, 4 s ...), while the peer cannot be reached or answers 5xx or 429, at most
  // `options.attempts` times and never past `options.deadline`. Any other answer is returned
  // for the caller to read. Errors: Unavailable (naming the peer, its URL and `what`) when every
  // try failed, DeadlineExceeded when the deadline had passed before a try, ResourceExhausted
  // for an answer over the body limit.
  asio::awaitable<StatusOr<HttpClientResponse>> CallPeer(const Peer& peer, HttpClientRequest request,
                                                         std::string_view what, CallOptions options);
  // CallPeer on the streamer with transcoder.streamer_timeout_ms per try.
  asio::awaitable<StatusOr<HttpClientResponse>> CallStreamer(HttpClientRequest request, std::string_view what,
                                                             int attempts = 5);
  // The copyright stage's match: POST /v1/match with the job's fingerprints. The JSON stored
  // under the result's "copyright": the service's answer with "checked_at_ms", or
  // {"status": "scan_failed", "error", "message"}; never fails the job.
  asio::awaitable<boost::json::object> MatchFingerprints(const std::string& job_id, const TranscodeResult& result,
                                                         std::chrono::steady_clock::time_point deadline);
  // POST /emit-label for a flagged track: {"val", "seq"}, or {"error", "message"}.
  asio::awaitable<boost::json::object> EmitCopyrightLabel(const std::string& job_id, const std::string& track_uri,
                                                          std::chrono::steady_clock::time_point deadline);
  asio::awaitable<StatusOr<std::string>> UploadToStreamer(const std::filesystem::path& file,
                                                          const std::string& content_type);
  asio::awaitable<void> DeliverCallback(JobRecord record);
  // Inserts a new job, on the blocking pool.
  asio::awaitable<Status> Persist(JobRecord record);

  // The job as the API shows it.
  boost::json::object JobJson(const JobRecord& record, double progress) const;
  std::optional<std::pair<JobRecord, double>> Snapshot(const std::string& id);

  ServiceEnv& env_;
  TranscoderSettings settings_;
  std::vector<RenditionSpec> default_ladder_;
  Peer streamer_;
  Peer fingerprint_;  // url empty: the copyright stage is off
  Peer labeler_;      // url empty: no labels
  std::vector<double> fingerprint_speeds_;  // 1.0 first
  std::string callback_key_;
  std::string drop_in_key_;
  std::filesystem::path work_dir_;
  std::unique_ptr<BlobStore> uploads_;          // job inputs, kept
  std::unique_ptr<BlobStore> drop_in_uploads_;  // POST /transcode inputs, removed after the answer
  std::unique_ptr<JobStore> jobs_;
  std::unique_ptr<asio::thread_pool> encoder_pool_;
  std::unique_ptr<asio::thread_pool> blocking_pool_;
  std::unique_ptr<HttpServer> server_;

  // Metrics (docs/transcoder.md): jobs waiting and encoding, jobs ended by state, callbacks,
  // copyright checks by outcome.
  prometheus::Gauge* queued_gauge_ = nullptr;
  prometheus::Gauge* running_gauge_ = nullptr;
  prometheus::Family<prometheus::Counter>* ended_ = nullptr;
  prometheus::Family<prometheus::Counter>* callbacks_ = nullptr;
  prometheus::Family<prometheus::Counter>* copyright_checks_ = nullptr;

  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<ActiveJob>> active_;  // running here; mutex_
  std::size_t running_ = 0;                                             // guarded by mutex_
  bool claiming_ = false;     // a ClaimJobs is on its way; mutex_
  bool pump_again_ = false;   // a pump came while it was; mutex_
  std::uint64_t claims_made_ = 0;
  std::string instance_;      // random, per process: the prefix of its claims
  bool shared_queue_ = false;  // on PostgreSQL with other instances
  std::unique_ptr<PgListener> listener_;  // new jobs announced by the other instances
  std::set<std::string> publishing_;  // originals whose track is being registered; mutex_
  std::shared_ptr<std::atomic<bool>> shutting_down_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace plyr::transcoder
