#include "transcoder/transcoder_service.h"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <chrono>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include "common/did.h"
#include "common/file_util.h"
#include "common/media/chromaprint.h"
#include "common/random.h"
#include "common/run_blocking.h"
#include "common/upload.h"
#include "transcoder/multipart_reader.h"
#include "transcoder/transcode_json.h"

namespace plyr::transcoder {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kJsonBodyLimit = 64 * 1024;
constexpr std::size_t kUploadChunk = 256 * 1024;
constexpr std::size_t kListLimitMax = 500;

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsValidJobId(std::string_view id) {
  return id.size() == 24 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The Content-Type to give the original in the streamer: the submitter's if it names audio,
// else what probing found.
std::string ContentTypeForContainer(std::string_view container) {
  if (container == "mp3") return "audio/mpeg";
  if (container == "flac") return "audio/flac";
  if (container == "wav") return "audio/wav";
  if (container == "aiff") return "audio/aiff";
  if (container == "ogg") return "audio/ogg";
  if (container.find("webm") != std::string_view::npos || container.find("matroska") != std::string_view::npos) {
    return "audio/webm";
  }
  if (container.find("mp4") != std::string_view::npos) return "audio/mp4";  // AAC and ALAC alike
  return "application/octet-stream";
}

boost::json::object ErrorJson(const Status& status) {
  return {{"error", StatusCodeName(status.code())}, {"message", status.message()}};
}

json::value ParseOr(const std::string& text, json::value fallback = nullptr) {
  if (text.empty()) return fallback;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? fallback : v;
}

// What a submitter may ask of a job.
struct JobOptions {
  std::vector<RenditionSpec> renditions;
  std::string owner_did;
  std::string gate = "none";
  std::string track_uri;
  std::string callback_url;
  bool copyright_check = true;  // run the copyright stage (when the service has one)

  json::object ToJson() const {
    json::object o{{"renditions", LadderText(renditions)}, {"owner_did", owner_did}, {"gate", gate}};
    o["track_uri"] = track_uri.empty() ? json::value(nullptr) : json::value(track_uri);
    o["callback_url"] = callback_url.empty() ? json::value(nullptr) : json::value(callback_url);
    o["copyright_check"] = copyright_check;
    return o;
  }
};

// Reads options from a lookup (query parameters or JSON members) and checks them.
StatusOr<JobOptions> ParseOptions(const std::function<std::optional<std::string>(std::string_view)>& get,
                                  const std::vector<RenditionSpec>& default_ladder) {
  JobOptions o;
  o.renditions = default_ladder;
  if (auto r = get("renditions")) {
    auto ladder = ParseLadder(*r);
    if (!ladder.ok()) return ladder.status();
    o.renditions = std::move(*ladder);
  }
  auto owner = get("owner_did");
  if (!owner || !IsPlausibleDid(*owner)) {
    return Status(StatusCode::kInvalidArgument, "owner_did must be the track owner's DID, e.g. did:plc:abc123");
  }
  o.owner_did = *owner;
  if (auto gate = get("gate")) {
    if (*gate != "none" && *gate != "any" && *gate != "copyright") {
      return Status(StatusCode::kInvalidArgument, "gate must be one of none, any, copyright");
    }
    o.gate = *gate;
  }
  if (auto uri = get("track_uri")) {
    if (!uri->starts_with("at://") || uri->size() > 8192 || !boost::urls::parse_uri(*uri)) {
      return Status(StatusCode::kInvalidArgument, "track_uri must be an at:// URI");
    }
    o.track_uri = *uri;
  }
  if (auto url = get("callback_url")) {
    auto parsed = boost::urls::parse_uri(*url);
    if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https") || parsed->host().empty() ||
        url->size() > 2048) {
      return Status(StatusCode::kInvalidArgument, "callback_url must be an http(s) URL");
    }
    o.callback_url = *url;
  }
  if (auto check = get("copyright_check")) {
    if (*check == "true" || *check == "1") {
      o.copyright_check = true;
    } else if (*check == "false" || *check == "0") {
      o.copyright_check = false;
    } else {
      return Status(StatusCode::kInvalidArgument, "copyright_check must be true or false");
    }
  }
  return o;
}

// Parses the job's stored options (written by JobOptions::ToJson).
JobOptions StoredOptions(const std::string& text) {
  JobOptions o;
  json::value v = ParseOr(text, json::object{});
  if (!v.is_object()) return o;
  const auto& obj = v.as_object();
  auto str = [&](const char* key) -> std::string {
    const json::value* x = obj.if_contains(key);
    return x && x->is_string() ? std::string(x->as_string()) : std::string();
  };
  if (auto ladder = ParseLadder(str("renditions")); ladder.ok()) o.renditions = std::move(*ladder);
  o.owner_did = str("owner_did");
  o.gate = str("gate");
  o.track_uri = str("track_uri");
  o.callback_url = str("callback_url");
  // Absent in jobs stored before the option existed: they are checked like any other.
  const json::value* check = obj.if_contains("copyright_check");
  o.copyright_check = !(check && check->is_bool() && !check->as_bool());
  return o;
}

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(message.data()), message.size());
  crypto_auth_hmacsha256_final(&state, mac);
  std::string hex;
  for (unsigned char c : mac) hex += fmt::format("{:02x}", c);
  return hex;
}

// The secret that signs callbacks: configured, or kept in the data folder (created once).
StatusOr<std::string> ResolveCallbackKey(const std::string& configured, const fs::path& dir) {
  if (!configured.empty()) return configured;
  const fs::path path = dir / "callback-key";
  if (auto existing = ReadSmallFile(path, 4096)) {
    std::string key = *existing;
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
    if (!key.empty()) return key;
  }
  std::string key = RandomHex(32);
  if (Status written = WriteFileAtomically(path, key + "\n", 0600); !written.ok()) return written;
  return key;
}

// A peer's base URL without its trailing slashes (empty stays empty: not configured).
// InvalidArgument naming the setting `key` for a URL that is not http(s).
StatusOr<std::string> PeerUrl(std::string_view key, std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (!url.empty()) {
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https") || parsed->host().empty()) {
      return Status(StatusCode::kInvalidArgument, std::string(key) + " is not an http(s) URL: " + url);
    }
  }
  return url;
}

// What the labeler takes as a label's `val`: 1-128 bytes, no whitespace or control characters.
bool IsPlausibleLabelValue(std::string_view value) {
  return !value.empty() && value.size() <= 128 && std::none_of(value.begin(), value.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// A callback nobody has tried for this long is owed by an instance that died: another takes it.
constexpr std::int64_t kStaleCallbackMs = 120'000;

asio::awaitable<void> SleepFor(std::chrono::milliseconds delay) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(delay);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

// The job database could not be read: 500, never "no such job" (the job may well exist).
Response JobReadFailed(const Status& status) {
  spdlog::error("transcoder: {}", status.message());
  return ErrorResponse(http::status::internal_server_error, "StorageError", "cannot read the job database");
}

}  // namespace

// A queued or running job, shared by the runner, the API handlers and the encoder pool.
struct TranscoderService::ActiveJob {
  JobRecord record;       // guarded by the service's mutex_
  double progress = 0;    // guarded by the service's mutex_
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
  // Set (under mutex_) once the encoders are done and the job goes on to publish: from then on a
  // cancel is refused rather than accepted and ignored.
  bool publishing = false;
  // Set when the job's claim was lost (its lease ran out and another runner took it): this run
  // stops and records nothing.
  bool lost = false;  // guarded by the service's mutex_
};

void AddTranscoderSettings(CLI::App& command, const SettingsFile& file, TranscoderSettings& s) {
  file.Bind(command, "transcoder.listen", s.listen, "Transcoder listen address (host:port)");
  file.Bind(command, "transcoder.workers", s.workers, "Encoder threads shared by all jobs (0: one per core)");
  file.Bind(command, "transcoder.renditions", s.renditions, "Default rendition ladder of a job");
  file.Bind(command, "transcoder.upload_max_bytes", s.upload_max_bytes, "Largest upload a job or /transcode takes");
  file.Bind(command, "transcoder.max_duration_s", s.max_duration_s, "Longest audio a job takes (seconds)");
  file.Bind(command, "transcoder.job_timeout_s", s.job_timeout_s, "Wall time a job may run before it fails");
  file.Bind(command, "transcoder.max_running_jobs", s.max_running_jobs, "Jobs transcoding at once");
  file.Bind(command, "transcoder.queue_limit", s.queue_limit, "Jobs waiting at most (429 beyond)");
  file.Bind(command, "transcoder.streamer_url", s.streamer_url,
            "Streamer that receives the renditions (default: the one in this process, else http://127.0.0.1:8410)");
  file.BindSecret(command, "transcoder.streamer_token", s.streamer_token,
            "The streamer's admin token (default: this process's admin token)");
  file.Bind(command, "transcoder.streamer_timeout_ms", s.streamer_timeout_ms, "Deadline of one call to the streamer");
  file.BindSecret(command, "transcoder.callback_key", s.callback_key,
            "HMAC-SHA256 key that signs job callbacks (default: <data>/transcoder/callback-key)");
  file.Bind(command, "transcoder.callback_attempts", s.callback_attempts, "Deliveries tried before a callback is dropped");
  file.Bind(command, "transcoder.lease_ms", s.lease_ms,
            "A running job's claim lasts this long unless its runner renews it (every third of it); a job whose "
            "runner died runs again elsewhere after it (1000-600000)")
      ->check(CLI::Range(std::int64_t{1000}, std::int64_t{600'000}));
  file.BindSecret(command, "transcoder.drop_in_key", s.drop_in_key,
            "X-Transcoder-Key accepted by POST /transcode (default: the admin token)");
  file.Bind(command, "transcoder.fingerprint_url", s.fingerprint_url,
            "Fingerprint service a job's audio is matched against (POST /v1/match); empty: no copyright check, "
            "unless one runs in this process");
  file.BindSecret(command, "transcoder.fingerprint_token", s.fingerprint_token,
                  "The fingerprint service's admin token (default: this process's admin token)");
  file.Bind(command, "transcoder.fingerprint_speeds", s.fingerprint_speeds,
            "Speed variants fingerprinted for the match, each in [0.8, 1.25] (1 is always included)");
  file.Bind(command, "transcoder.label_flagged", s.label_flagged,
            "Emit a label on the labeler for a track the fingerprint service flags (needs the job's track_uri)");
  file.Bind(command, "transcoder.label_value", s.label_value, "The label a flagged track gets");
  file.Bind(command, "transcoder.labeler_url", s.labeler_url,
            "Labeler that receives the labels (POST /emit-label); empty: the one in this process, if any");
  file.BindSecret(command, "transcoder.labeler_token", s.labeler_token,
                  "The labeler's admin token (default: this process's admin token)");
}

TranscoderService::TranscoderService(ServiceEnv& env, const TranscoderSettings& settings)
    : env_(env), settings_(settings) {}

TranscoderService::~TranscoderService() {
  shutting_down_->store(true);
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, job] : active_) job->cancel->store(true);
  }
  if (encoder_pool_) encoder_pool_->join();
  if (blocking_pool_) blocking_pool_->join();
}

StatusOr<std::unique_ptr<TranscoderService>> TranscoderService::Create(ServiceEnv& env,
                                                                      const TranscoderSettings& settings) {
  std::unique_ptr<TranscoderService> service(new TranscoderService(env, settings));
  auto ladder = ParseLadder(settings.renditions);
  if (!ladder.ok()) return Status(StatusCode::kInvalidArgument, "transcoder.renditions: " + ladder.status().message());
  service->default_ladder_ = std::move(*ladder);
  if (settings.max_duration_s <= 0 || settings.job_timeout_s <= 0 || settings.upload_max_bytes == 0 ||
      settings.max_running_jobs == 0 || settings.streamer_timeout_ms <= 0 || settings.callback_attempts < 0) {
    return Status(StatusCode::kInvalidArgument,
                  "transcoder limits must be positive (max_duration_s, job_timeout_s, upload_max_bytes, "
                  "max_running_jobs, streamer_timeout_ms)");
  }
  if (sodium_init() < 0) return Status(StatusCode::kInternal, "libsodium failed to initialise");

  const fs::path dir = env.data_dir / "transcoder";
  service->work_dir_ = dir / "work";
  std::error_code ec;
  fs::remove_all(service->work_dir_, ec);  // what a previous run left half-made is never used
  fs::create_directories(service->work_dir_, ec);
  if (ec) return Status(StatusCode::kInternal, "cannot create " + service->work_dir_.string() + ": " + ec.message());

  auto uploads = BlobStore::Open(dir / "uploads");
  if (!uploads.ok()) return Status(uploads.status().code(), "the upload store: " + uploads.status().message());
  service->uploads_ = std::move(*uploads);
  auto drop_in_uploads = BlobStore::Open(service->work_dir_ / "drop-in");
  if (!drop_in_uploads.ok()) {
    return Status(drop_in_uploads.status().code(), "the drop-in upload store: " + drop_in_uploads.status().message());
  }
  service->drop_in_uploads_ = std::move(*drop_in_uploads);
  // The queue: SQLite in the data folder, or PostgreSQL shared with the other instances.
  StatusOr<std::unique_ptr<JobStore>> jobs = Status(StatusCode::kInternal, "unset");
  if (env.database_url.empty()) {
    auto db = SqliteDb::Open(dir / "jobs.db");
    if (!db.ok()) return Status(db.status().code(), "cannot open the job database: " + db.status().message());
    jobs = JobStore::Open(std::move(*db));
  } else {
    auto db = PgDb::Open(env.database_url, env.database_connections);
    if (!db.ok()) return Status(db.status().code(), "the job database: " + db.status().message());
    jobs = JobStore::OpenPostgres(std::shared_ptr<PgDb>(std::move(*db)));
    service->shared_queue_ = true;
  }
  if (!jobs.ok()) return jobs.status();
  service->jobs_ = std::move(*jobs);
  service->instance_ = RandomHex(8);

  auto key = ResolveCallbackKey(settings.callback_key, dir);
  if (!key.ok()) return key.status();
  service->callback_key_ = std::move(*key);
  // Each peer's token defaults to this process's admin token (the peer runs beside it, or shares it).
  auto peer = [&](std::string name, std::string_view key, std::string url, const std::string& token,
                  Peer& into) -> Status {
    auto checked = PeerUrl(key, std::move(url));
    if (!checked.ok()) return checked.status();
    into = Peer{std::move(name), std::move(*checked), token.empty() ? env.admin_token : token};
    return OkStatus();
  };
  const std::string streamer_url = settings.streamer_url.empty() ? "http://127.0.0.1:8410" : settings.streamer_url;
  if (auto s = peer("streamer", "transcoder.streamer_url", streamer_url, settings.streamer_token, service->streamer_);
      !s.ok()) {
    return s;
  }
  if (auto s = peer("fingerprint service", "transcoder.fingerprint_url", settings.fingerprint_url,
                    settings.fingerprint_token, service->fingerprint_);
      !s.ok()) {
    return s;
  }
  if (auto s = peer("labeler", "transcoder.labeler_url", settings.labeler_url, settings.labeler_token,
                    service->labeler_);
      !s.ok()) {
    return s;
  }
  service->drop_in_key_ = settings.drop_in_key.empty() ? env.admin_token : settings.drop_in_key;
  // Checked even while the stage is off, so a mistake shows at once rather than when it is on.
  auto speeds = media::ParseSpeedList(settings.fingerprint_speeds);
  if (!speeds.ok()) {
    return Status(StatusCode::kInvalidArgument, "transcoder.fingerprint_speeds: " + speeds.status().message());
  }
  service->fingerprint_speeds_ = std::move(*speeds);
  if (!IsPlausibleLabelValue(settings.label_value)) {
    return Status(StatusCode::kInvalidArgument,
                  "transcoder.label_value must be 1-128 bytes without spaces or control characters");
  }
  if (settings.label_flagged && !service->fingerprint_.url.empty() && service->labeler_.url.empty()) {
    return Status(StatusCode::kInvalidArgument,
                  "transcoder.label_flagged needs a labeler: set transcoder.labeler_url (or run the labeler in this "
                  "process)");
  }
  if (!service->fingerprint_.url.empty()) {
    spdlog::info("transcoder: copyright check on fingerprint_url={} speeds={} labels={}", service->fingerprint_.url,
                 media::SpeedListText(service->fingerprint_speeds_),
                 settings.label_flagged ? service->labeler_.url + " val=" + settings.label_value : "off");
  }

  service->encoder_pool_ = std::make_unique<asio::thread_pool>(WorkerThreads(settings.workers));
  service->blocking_pool_ = std::make_unique<asio::thread_pool>(2);

  HttpServerOptions options = env.server_defaults;
  options.service = "transcoder";
  auto server = ListenForService(env, settings.listen, service->BuildRouter(), options);
  if (!server.ok()) return server.status();
  service->server_ = std::move(*server);

  auto& registry = env.metrics.registry();
  auto& jobs_family = prometheus::BuildGauge()
                          .Name("plyr_transcoder_jobs")
                          .Help("Transcode jobs waiting in the queue or encoding")
                          .Register(registry);
  service->queued_gauge_ = &jobs_family.Add({{"state", "queued"}});
  service->running_gauge_ = &jobs_family.Add({{"state", "running"}});
  service->ended_ = &prometheus::BuildCounter()
                         .Name("plyr_transcoder_jobs_ended_total")
                         .Help("Transcode jobs that ended, by final state")
                         .Register(registry);
  service->callbacks_ = &prometheus::BuildCounter()
                             .Name("plyr_transcoder_callbacks_total")
                             .Help("Job callback deliveries, by outcome (delivered, retried, gave_up)")
                             .Register(registry);
  service->copyright_checks_ = &prometheus::BuildCounter()
                                    .Name("plyr_transcoder_copyright_checks_total")
                                    .Help("Copyright checks of jobs, by outcome (clear, flagged, failed)")
                                    .Register(registry);

  // Jobs a previous run of this process left running go back to the queue (on SQLite, which one
  // process owns; on PostgreSQL their leases run out instead). Callbacks still owed are
  // delivered: all of them on SQLite, those nobody has tried for a while on PostgreSQL. Both are
  // read before anything starts, so an unreadable store stops the start instead of dropping them.
  auto requeued = service->jobs_->Requeue();
  if (!requeued.ok()) return requeued.status();
  if (*requeued > 0) spdlog::info("transcoder: {} unfinished jobs queued again", *requeued);
  auto owed = service->jobs_->ClaimCallbacks(NowMs(), service->shared_queue_ ? kStaleCallbackMs : 0);
  if (!owed.ok()) return owed.status();
  if (service->shared_queue_) {
    // A job submitted to another instance wakes this one at once.
    TranscoderService* self = service.get();
    auto listener = PgListener::Start(env.database_url, std::string(kJobChannel), [self](bool, const std::string&) {
      asio::post(self->env_.runtime.main_context(), [self] {
        std::lock_guard lock(self->mutex_);
        self->PumpLocked();
      });
    });
    if (!listener.ok()) return listener.status();
    service->listener_ = std::move(*listener);
  }
  TranscoderService* self = service.get();
  asio::co_spawn(env.runtime.main_context(), self->KeepLeases(), asio::detached);
  for (auto& record : *owed) {
    asio::co_spawn(env.runtime.main_context(), service->DeliverCallback(std::move(record)), asio::detached);
  }
  return service;
}

Router TranscoderService::BuildRouter() {
  Router router;
  router.Add(http::verb::post, "/v1/jobs", this, &TranscoderService::SubmitJob);
  router.Add(http::verb::get, "/v1/jobs", this, &TranscoderService::ListJobs);
  router.Add(http::verb::get, "/v1/jobs/{id}", this, &TranscoderService::GetJob);
  router.Add(http::verb::delete_, "/v1/jobs/{id}", this, &TranscoderService::CancelJob);
  router.Add(http::verb::get, "/v1/jobs/{id}/events", this, &TranscoderService::JobEvents);
  router.Add(http::verb::post, "/transcode", this, &TranscoderService::DropInTranscode);
  return router;
}

// ---------------------------------------------------------------------------------------------
// The job API

json::object TranscoderService::JobJson(const JobRecord& r, double progress) const {
  json::object o{{"id", r.id},
                 {"state", JobStateName(r.state)},
                 {"progress", r.state == JobState::kDone ? 1.0 : std::round(progress * 1000) / 1000},
                 {"created_at_ms", r.created_ms},
                 {"updated_at_ms", r.updated_ms},
                 {"attempts", r.attempts},
                 {"options", ParseOr(r.options_json, json::object{})},
                 {"input", ParseOr(r.input_json, json::object{})},
                 {"result", ParseOr(r.result_json)},
                 {"error", ParseOr(r.error_json)}};
  return o;
}

std::optional<std::pair<JobRecord, double>> TranscoderService::Snapshot(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = active_.find(id);
  if (it == active_.end()) return std::nullopt;
  return std::pair{it->second->record, it->second->progress};
}

asio::awaitable<Status> TranscoderService::Persist(JobRecord record) {
  // GCC 12 may destroy non-trivial temporaries of a co_await expression twice: every blocking
  // call is built as a named local first (the same below).
  std::function<Status()> write = [this, record = std::move(record)] { return jobs_->Insert(record); };
  co_return co_await RunBlocking(*blocking_pool_, std::move(write));
}

asio::awaitable<Response> TranscoderService::SubmitJob(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  {
    std::function<StatusOr<std::size_t>()> count = [this] { return jobs_->Count(JobState::kQueued); };
    auto waiting = co_await RunBlocking(*blocking_pool_, std::move(count));
    if (!waiting.ok()) co_return JobReadFailed(waiting.status());
    if (*waiting >= settings_.queue_limit) {
      Response r = ErrorResponse(http::status::too_many_requests, "QueueFull",
                                 fmt::format("{} jobs are waiting, the most this transcoder queues; retry later",
                                             *waiting));
      r.header.set(http::field::retry_after, "30");
      co_return r;
    }
  }
  const std::uint64_t limit = settings_.upload_max_bytes;
  auto too_large = [&] {
    return ErrorResponse(http::status::payload_too_large, "PayloadTooLarge",
                         fmt::format("uploads are limited to {} bytes", limit));
  };
  const std::string_view content_type = request.Field(http::field::content_type);
  const bool json_body = content_type.starts_with("application/json");

  JobRecord record;
  json::object input;
  StatusOr<JobOptions> options = Status(StatusCode::kInternal, "unset");
  if (json_body) {
    auto body = co_await request.ReadAll(kJsonBodyLimit);
    if (auto* e = std::get_if<BodyError>(&body)) co_return ErrorResponseFor(*e, kJsonBodyLimit);
    boost::system::error_code ec;
    json::value doc = json::parse(std::get<std::string>(body), ec);
    if (ec || !doc.is_object()) co_return ErrorResponse(http::status::bad_request, "InvalidRequest", "the body must be a JSON object");
    const json::object& obj = doc.as_object();
    options = ParseOptions(
        [&](std::string_view key) -> std::optional<std::string> {
          const json::value* v = obj.if_contains(key);
          if (!v || v->is_null()) return std::nullopt;
          if (v->is_string()) return std::string(v->as_string());
          if (v->is_bool()) return v->as_bool() ? "true" : "false";  // "copyright_check": false
          if (v->is_array()) {  // "renditions": ["mp3-320", ...]
            std::string joined;
            for (const auto& item : v->as_array()) {
              joined += (joined.empty() ? "" : ",") + (item.is_string() ? std::string(item.as_string()) : "?");
            }
            return joined;
          }
          return "?";
        },
        default_ladder_);
    if (!options.ok()) co_return ErrorResponseFor(options.status());
    const json::value* id = obj.if_contains("file_id");
    if (!id || !id->is_string() || !BlobStore::IsValidId(id->as_string())) {
      co_return ErrorResponse(http::status::bad_request, "InvalidRequest",
                              "a JSON submission names a stored upload: {\"file_id\": \"<16 hex>\"}");
    }
    const std::string file_id(id->as_string());
    if (auto blob = uploads_->OpenForRead(file_id)) {
      input = {{"file_id", file_id}, {"size", blob->size}, {"content_type", nullptr}};
    } else {
      // Not an upload of ours: a file the streamer stores (the API layer uploaded it there).
      HttpClientRequest head;
      head.method = http::verb::head;
      head.url = "/v1/files/" + file_id;
      auto found = co_await CallStreamer(std::move(head), "looking up the file", /*attempts=*/1);
      if (!found.ok()) {
        co_return ErrorResponse(http::status::bad_gateway, "StreamerUnavailable", found.status().message());
      }
      if (found->status != 200) {
        co_return ErrorResponse(http::status::not_found, "FileNotFound",
                                "no file with this file_id is stored in the transcoder or the streamer");
      }
      std::uint64_t size = 0;
      const std::string_view length = found->Header("Content-Length");
      std::from_chars(length.data(), length.data() + length.size(), size);
      if (size > limit) co_return too_large();
      input = {{"file_id", file_id}, {"size", size}, {"content_type", nullptr}, {"source", "streamer"}};
      const std::string_view type = found->Header("Content-Type");
      if (type.starts_with("audio/") && type.size() < 128) input["content_type"] = type;
    }
  } else {
    options = ParseOptions([&](std::string_view key) { return request.Query(key); }, default_ladder_);
    if (!options.ok()) co_return ErrorResponseFor(options.status());
    auto received = co_await ReceiveUpload(request, *uploads_, limit, "transcoder");
    if (auto* refused = std::get_if<Response>(&received)) co_return std::move(*refused);
    auto writer = std::move(std::get<std::unique_ptr<BlobStore::Writer>>(received));
    if (writer->size() == 0) {
      co_return ErrorResponse(http::status::bad_request, "EmptyUpload", "the request body (the audio) is empty");
    }
    const bool typed = !content_type.empty() && content_type.size() < 128 && content_type.starts_with("audio/");
    if (shared_queue_) {
      // Any instance may run the job: the input goes where every instance can fetch it, straight
      // from this upload's own temporary file (never a shared name another request could remove).
      const std::string type = typed ? std::string(content_type) : std::string("application/octet-stream");
      const fs::path temporary = writer->temp_path();
      auto uploaded = co_await UploadToStreamer(temporary, type);
      if (!uploaded.ok()) {
        co_return ErrorResponse(http::status::bad_gateway, "StreamerUnavailable",
                                "the upload could not be stored on the streamer: " + uploaded.status().message());
      }
      input = {{"file_id", *uploaded}, {"size", writer->size()}, {"source", "streamer"}};
    } else {
      std::function<StatusOr<BlobInfo>()> commit = [w = writer.get()] { return w->Commit(); };
      auto committed = co_await RunBlocking(*blocking_pool_, std::move(commit));
      if (!committed.ok()) {
        spdlog::error("transcoder: {}", committed.status().message());
        co_return StorageErrorResponse(committed.status().code(), "cannot store the upload");
      }
      input = {{"file_id", committed->file_id}, {"size", committed->size}};
    }
    input["content_type"] = typed ? json::value(content_type) : json::value(nullptr);  // null: found by probing
  }

  record.id = RandomHex(12);
  record.state = JobState::kQueued;
  record.created_ms = record.updated_ms = NowMs();
  record.options_json = json::serialize(options->ToJson());
  record.input_json = json::serialize(input);
  record.callback = CallbackState::kNone;
  if (auto s = co_await Persist(record); !s.ok()) {
    spdlog::error("transcoder: cannot record a job error=\"{}\"", s.message());
    co_return StorageErrorResponse(s.code(), "cannot record the job");
  }
  {
    std::lock_guard lock(mutex_);
    PumpLocked();
  }
  spdlog::info("transcoder: job accepted id={} input={} renditions={}", record.id,
               std::string(input.at("file_id").as_string()), LadderText(options->renditions));
  Response r = JsonResponse(http::status::accepted, json::object{{"id", record.id}, {"state", "queued"}});
  r.header.set(http::field::location, "/v1/jobs/" + record.id);
  co_return r;
}

asio::awaitable<Response> TranscoderService::GetJob(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string& id = *request.Param("id");
  if (!IsValidJobId(id)) co_return ErrorResponse(http::status::not_found, "NotFound", "no job with this id");
  if (auto snapshot = Snapshot(id)) co_return JsonResponse(http::status::ok, JobJson(snapshot->first, snapshot->second));
  std::function<StatusOr<std::optional<JobRecord>>()> find = [this, id] { return jobs_->Find(id); };
  auto record = co_await RunBlocking(*blocking_pool_, std::move(find));
  if (!record.ok()) co_return JobReadFailed(record.status());
  if (!*record) co_return ErrorResponse(http::status::not_found, "NotFound", "no job with this id");
  co_return JsonResponse(http::status::ok, JobJson(**record, 0));
}

asio::awaitable<Response> TranscoderService::ListJobs(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  std::optional<JobState> state;
  if (auto text = request.Query("state")) {
    state = ParseJobState(*text);
    if (!state) {
      co_return ErrorResponse(http::status::bad_request, "InvalidRequest",
                              "state must be one of queued, running, done, failed, cancelled");
    }
  }
  std::size_t limit = 50;
  if (auto text = request.Query("limit")) {
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
    if (ec != std::errc() || end != text->data() + text->size() || n == 0 || n > kListLimitMax) {
      co_return ErrorResponse(http::status::bad_request, "InvalidRequest", "limit must be 1-500");
    }
    limit = n;
  }
  std::function<StatusOr<std::vector<JobRecord>>()> list = [this, state, limit] { return jobs_->List(state, limit); };
  auto records = co_await RunBlocking(*blocking_pool_, std::move(list));
  if (!records.ok()) co_return JobReadFailed(records.status());
  json::array jobs;
  for (auto& record : *records) {
    // A live job's newest state and progress are in memory.
    auto live = Snapshot(record.id);
    if (live) {
      jobs.push_back(JobJson(live->first, live->second));
    } else {
      jobs.push_back(JobJson(record, 0));
    }
  }
  co_return JsonResponse(http::status::ok, json::object{{"jobs", std::move(jobs)}});
}

asio::awaitable<Response> TranscoderService::CancelJob(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string& id = *request.Param("id");
  if (!IsValidJobId(id)) co_return ErrorResponse(http::status::not_found, "NotFound", "no job with this id");
  std::optional<std::pair<JobRecord, double>> running;
  std::optional<JobState> ended;
  bool publishing = false;
  {
    std::lock_guard lock(mutex_);
    auto it = active_.find(id);
    if (it != active_.end() && IsTerminal(it->second->record.state)) {
      // Ended, and still being put away (stored, its folder removed): as final as a stored job.
      ended = it->second->record.state;
    } else if (it != active_.end() && it->second->publishing) {
      publishing = true;
    } else if (it != active_.end()) {
      // Running here: the runner stops at its next chunk and records the cancellation.
      it->second->cancel->store(true);
      running = std::pair{it->second->record, it->second->progress};
    }
  }
  if (publishing) {
    co_return ErrorResponse(http::status::conflict, "JobPublishing",
                            "the job's renditions are being published; it can no longer be cancelled");
  }
  if (running) co_return JsonResponse(http::status::accepted, JobJson(running->first, running->second));
  if (!ended) {
    // Queued (it ends now), or running on another instance (asked to stop: its runner learns it
    // when it next renews its lease).
    using Outcome = StatusOr<std::pair<JobStore::CancelOutcome, JobRecord>>;
    std::function<Outcome()> cancel = [this, id] {
      return jobs_->Cancel(id, [](JobRecord& job) {
        job.state = JobState::kCancelled;
        job.updated_ms = NowMs();
        job.error_json = json::serialize(ErrorJson(Status(StatusCode::kCancelled, "cancelled before it ran")));
        if (!StoredOptions(job.options_json).callback_url.empty()) job.callback = CallbackState::kPending;
        job.callback_at_ms = job.updated_ms;
      });
    };
    auto outcome = co_await RunBlocking(*blocking_pool_, std::move(cancel));
    if (!outcome.ok()) co_return JobReadFailed(outcome.status());
    auto& [kind, record] = *outcome;
    switch (kind) {
      case JobStore::CancelOutcome::kNotFound:
        co_return ErrorResponse(http::status::not_found, "NotFound", "no job with this id");
      case JobStore::CancelOutcome::kRequested:
        co_return JsonResponse(http::status::accepted, JobJson(record, 0));
      case JobStore::CancelOutcome::kCancelled:
        ended_->Add({{"state", "cancelled"}}).Increment();
        RefreshQueueGauge();
        if (record.callback == CallbackState::kPending) {
          asio::co_spawn(co_await asio::this_coro::executor, DeliverCallback(record), asio::detached);
        }
        co_return JsonResponse(http::status::ok, JobJson(record, 0));
      case JobStore::CancelOutcome::kEnded:
        ended = record.state;
        break;
    }
  }
  co_return ErrorResponse(http::status::conflict, "JobFinished",
                          "the job has already ended (" + std::string(JobStateName(*ended)) + ")");
}

asio::awaitable<Response> TranscoderService::JobEvents(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string id = *request.Param("id");
  if (!IsValidJobId(id)) co_return ErrorResponse(http::status::not_found, "NotFound", "no job with this id");
  if (!Snapshot(id)) {
    std::function<StatusOr<std::optional<JobRecord>>()> find = [this, id] { return jobs_->Find(id); };
    auto record = co_await RunBlocking(*blocking_pool_, std::move(find));
    if (!record.ok()) co_return JobReadFailed(record.status());
    if (!*record) co_return ErrorResponse(http::status::not_found, "NotFound", "no job with this id");
  }
  Response response;
  response.take_over = [this, id](asio::ip::tcp::socket& socket, const RequestHeader&) -> asio::awaitable<void> {
    auto send = [&](std::string text) -> asio::awaitable<bool> {
      auto [ec, n] = co_await asio::async_write(socket, asio::buffer(text), asio::as_tuple(asio::use_awaitable));
      co_return !ec;
    };
    if (!co_await send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                       "Connection: close\r\n\r\n")) {
      co_return;
    }
    std::string last;
    auto quiet_since = std::chrono::steady_clock::now();
    auto stored_at = std::chrono::steady_clock::time_point{};
    std::optional<std::pair<JobRecord, double>> stored;
    for (;;) {
      // A job running here has its progress in memory; any other (queued, running elsewhere,
      // ended) is read from the store, at most every half second.
      auto snapshot = Snapshot(id);
      if (!snapshot) {
        if (std::chrono::steady_clock::now() - stored_at >= std::chrono::milliseconds(500)) {
          std::function<StatusOr<std::optional<JobRecord>>()> find = [this, id] { return jobs_->Find(id); };
          auto record = co_await RunBlocking(*blocking_pool_, std::move(find));
          if (!record.ok()) {
            spdlog::error("transcoder: job events: {}", record.status().message());
            co_return;
          }
          if (!*record) co_return;
          stored_at = std::chrono::steady_clock::now();
          stored = std::pair{**record, 0.0};
          if (IsTerminal((*record)->state)) {
            co_await send(fmt::format("event: {}\ndata: {}\n\n", JobStateName((*record)->state),
                                      json::serialize(JobJson(**record, 1.0))));
            co_return;
          }
        }
        snapshot = stored;
      }
      json::object progress{{"id", id},
                            {"state", JobStateName(snapshot->first.state)},
                            {"progress", std::round(snapshot->second * 1000) / 1000}};
      std::string line = json::serialize(progress);
      if (line != last) {
        if (!co_await send("event: progress\ndata: " + line + "\n\n")) co_return;
        last = std::move(line);
        quiet_since = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - quiet_since > std::chrono::seconds(15)) {
        if (!co_await send(": keep-alive\n\n")) co_return;  // lets proxies and clients see the stream is alive
        quiet_since = std::chrono::steady_clock::now();
      }
      if (shutting_down_->load()) co_return;
      co_await SleepFor(std::chrono::milliseconds(200));
    }
  };
  co_return response;
}

// ---------------------------------------------------------------------------------------------
// Running jobs

void TranscoderService::PumpLocked() {
  running_gauge_->Set(static_cast<double>(running_));
  if (shutting_down_->load() || running_ >= settings_.max_running_jobs) return;
  if (claiming_) {
    pump_again_ = true;  // the claimer looks once more before it stops
    return;
  }
  claiming_ = true;
  // Posted, never started inline: co_spawn may run the coroutine at once on this thread, which
  // holds mutex_.
  asio::post(env_.runtime.main_context(),
             [this] { asio::co_spawn(env_.runtime.main_context(), ClaimJobs(), asio::detached); });
}

asio::awaitable<void> TranscoderService::ClaimJobs() {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      pump_again_ = false;
      if (shutting_down_->load() || running_ >= settings_.max_running_jobs) {
        claiming_ = false;
        co_return;
      }
    }
    const std::string claim = instance_ + "-" + std::to_string(++claims_made_);
    std::function<StatusOr<std::optional<JobRecord>>()> take = [this, claim] {
      return jobs_->Claim(claim, NowMs(), settings_.lease_ms);
    };
    auto claimed = co_await RunBlocking(*blocking_pool_, std::move(take));
    if (!claimed.ok()) spdlog::error("transcoder: cannot claim a job: {}", claimed.status().message());
    std::lock_guard lock(mutex_);
    if (!claimed.ok() || !*claimed) {
      // Nothing to run (or no database): stop, unless a pump came in meanwhile. The lease keeper
      // pumps again shortly either way.
      if (claimed.ok() && pump_again_) continue;
      claiming_ = false;
      co_return;
    }
    auto job = std::make_shared<ActiveJob>();
    job->record = std::move(**claimed);
    active_[job->record.id] = job;
    ++running_;
    running_gauge_->Set(static_cast<double>(running_));
    asio::post(env_.runtime.main_context(),
               [this, job] { asio::co_spawn(env_.runtime.main_context(), RunJob(job), asio::detached); });
  }
}

void TranscoderService::RefreshQueueGauge() {
  asio::post(*blocking_pool_, [this] {
    if (auto waiting = jobs_->Count(JobState::kQueued); waiting.ok()) {
      queued_gauge_->Set(static_cast<double>(*waiting));
    }
  });
}

asio::awaitable<void> TranscoderService::KeepLeases() {
  const auto every = std::chrono::milliseconds(std::max<std::int64_t>(100, settings_.lease_ms / 3));
  auto callbacks_checked = std::chrono::steady_clock::now();
  while (!shutting_down_->load()) {
    co_await SleepFor(every);
    if (shutting_down_->load()) co_return;
    std::vector<std::string> claims;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [id, job] : active_) {
        if (!IsTerminal(job->record.state) && !job->lost) claims.push_back(job->record.claim);
      }
    }
    if (!claims.empty()) {
      std::function<StatusOr<JobStore::Renewal>()> renew = [this, claims] {
        return jobs_->Renew(claims, NowMs(), settings_.lease_ms);
      };
      auto renewed = co_await RunBlocking(*blocking_pool_, std::move(renew));
      if (!renewed.ok()) {
        spdlog::error("transcoder: cannot renew job leases: {}", renewed.status().message());
      } else {
        std::lock_guard lock(mutex_);
        for (const auto& [id, job] : active_) {
          const std::string& claim = job->record.claim;
          if (std::find(renewed->lost.begin(), renewed->lost.end(), claim) != renewed->lost.end()) {
            spdlog::warn("transcoder: job claim lost id={} (its lease ran out; another runner has it)", id);
            job->lost = true;
            job->cancel->store(true);
          } else if (std::find(renewed->cancel.begin(), renewed->cancel.end(), claim) != renewed->cancel.end() &&
                     !job->publishing) {
            job->cancel->store(true);  // asked through another instance
          }
        }
      }
    }
    // Jobs whose runner died, and jobs a missed announcement did not bring.
    {
      std::lock_guard lock(mutex_);
      PumpLocked();
    }
    RefreshQueueGauge();
    // Callbacks an instance that died owed (on one process: none are ever stale).
    if (std::chrono::steady_clock::now() - callbacks_checked > std::chrono::milliseconds(kStaleCallbackMs / 4)) {
      callbacks_checked = std::chrono::steady_clock::now();
      std::function<StatusOr<std::vector<JobRecord>>()> owed = [this] {
        return jobs_->ClaimCallbacks(NowMs(), kStaleCallbackMs);
      };
      auto stale = co_await RunBlocking(*blocking_pool_, std::move(owed));
      if (stale.ok()) {
        for (auto& record : *stale) {
          asio::co_spawn(env_.runtime.main_context(), DeliverCallback(std::move(record)), asio::detached);
        }
      }
    }
  }
}

asio::awaitable<StatusOr<TranscodeResult>> TranscoderService::RunTranscode(TranscodeRequest transcode) {
  using Result = StatusOr<TranscodeResult>;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Result)>(
      [this](auto handler, TranscodeRequest transcode) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        StartTranscode(*encoder_pool_, std::move(transcode), [shared](Result result) {
          auto executor = asio::get_associated_executor(*shared);
          asio::post(executor, [shared, result = std::move(result)]() mutable { std::move (*shared)(std::move(result)); });
        });
      },
      asio::use_awaitable, std::move(transcode));
}

asio::awaitable<void> TranscoderService::RunJob(std::shared_ptr<ActiveJob> job) {
  JobRecord record;
  std::shared_ptr<std::atomic<bool>> cancel;
  {
    std::lock_guard lock(mutex_);
    record = job->record;  // claimed: running, its attempt counted
    cancel = job->cancel;
  }
  RefreshQueueGauge();
  spdlog::info("transcoder: job running id={} attempt={}", record.id, record.attempts);

  const JobOptions options = StoredOptions(record.options_json);
  const json::value input = ParseOr(record.input_json, json::object{});
  const std::string input_id =
      input.is_object() && input.as_object().contains("file_id") ? std::string(input.at("file_id").as_string()) : "";
  const fs::path scratch = work_dir_ / record.id;
  // Everything of this run, the copyright stage included, ends by then.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(settings_.job_timeout_s);
  const bool check_copyright = !fingerprint_.url.empty() && options.copyright_check;
  // A label an earlier run of this job already emitted (and recorded) is not emitted again.
  json::value earlier_label;
  if (const json::value stored = ParseOr(record.result_json); stored.is_object()) {
    const json::value* copyright = stored.as_object().if_contains("copyright");
    const json::value* label =
        copyright && copyright->is_object() ? copyright->as_object().if_contains("label") : nullptr;
    if (label && label->is_object() && label->as_object().contains("seq")) earlier_label = *label;
  }

  // A running slot bounds the jobs encoding at once; publishing to the streamer does not hold one.
  bool slot_held = true;
  auto release_slot = [&] {
    if (!slot_held) return;
    slot_held = false;
    std::lock_guard lock(mutex_);
    --running_;
    PumpLocked();
  };
  Status status;
  json::object result_json;
  {
    std::error_code ec;
    fs::remove_all(scratch, ec);
    fs::create_directories(scratch, ec);
    if (ec) status = Status(StatusCode::kResourceExhausted, "cannot create a work folder: " + ec.message());
  }
  // The input: our own upload, or a file fetched from the streamer into the work folder.
  // (On a shared queue every input is the streamer's: a local file of the same id may be another
  // request's, on its way.)
  fs::path input_path = uploads_->PathFor(input_id);
  if (status.ok() && (shared_queue_ || !uploads_->Contains(input_id))) {
    input_path = scratch / "input";
    status = co_await FetchFromStreamer(input_id, input_path);
  }
  if (status.ok()) {
    TranscodeRequest transcode;
    transcode.input = input_path;
    transcode.output_dir = scratch;
    transcode.renditions = options.renditions;
    transcode.max_duration_ms = settings_.max_duration_s * 1000;
    transcode.deadline = deadline;
    transcode.cancel = cancel;
    if (check_copyright) transcode.fingerprint_speeds = fingerprint_speeds_;  // in the same decode
    transcode.on_progress = [this, job](double p) {
      std::lock_guard lock(mutex_);
      job->progress = std::max(job->progress, p * 0.95);  // the rest is publishing
    };
    auto transcoded = co_await RunTranscode(std::move(transcode));
    release_slot();  // the encoders are done: the next job may start while this one publishes
    bool cancelled = false;
    {
      // Decided under the lock CancelJob takes: a cancel either lands before this (the job ends
      // cancelled, nothing registered) or is refused with 409 JobPublishing.
      std::lock_guard lock(mutex_);
      cancelled = cancel->load();
      job->publishing = transcoded.ok() && !cancelled;
    }
    if (!transcoded.ok()) {
      status = transcoded.status();
    } else if (cancelled) {
      status = Status(StatusCode::kCancelled, "the job was cancelled");  // before anything is registered
    } else {
      auto published = co_await Publish(record, input_path, *transcoded);
      if (published.ok()) {
        result_json = std::move(*published);
      } else {
        status = published.status();
      }
    }
    // The copyright stage: after publishing (a job that failed to publish is not checked) and
    // without the encoder slot. From here a cancel no longer stops the job (it is published), so
    // the stage runs to its end, bounded by the job's deadline; its failure is recorded in the
    // result and never fails the job.
    if (status.ok() && check_copyright) {
      json::object copyright = co_await MatchFingerprints(record.id, *transcoded, deadline);
      const json::value* flagged = copyright.if_contains("is_flagged");
      if (settings_.label_flagged && flagged && flagged->is_bool() && flagged->as_bool()) {
        if (!earlier_label.is_null()) {
          copyright["label"] = earlier_label;
        } else if (options.track_uri.empty()) {
          copyright["label"] = json::object{{"skipped", "no track_uri"}};
        } else {
          copyright["label"] = co_await EmitCopyrightLabel(record.id, options.track_uri, deadline);
        }
      }
      result_json["copyright"] = std::move(copyright);
      result_json["fingerprint_cpu_s"] = std::round(transcoded->fingerprint_cpu_seconds * 1000) / 1000;
    }
  }
  bool lost = false;
  {
    std::lock_guard lock(mutex_);
    lost = job->lost;
  }
  if (lost || (shutting_down_->load() && status.code() == StatusCode::kCancelled)) {
    // Not this run's to record: the job is another runner's now, or this process is stopping (the
    // job goes back to the queue for another instance, or the next start).
    if (!lost) {
      std::function<Status()> give_back = [this, claim = record.claim] { return jobs_->Release(claim); };
      if (Status s = co_await RunBlocking(*blocking_pool_, std::move(give_back)); !s.ok()) {
        spdlog::error("transcoder: {}", s.message());
      }
    }
    std::function<bool()> clean = [scratch] {
      std::error_code ec;
      fs::remove_all(scratch, ec);
      return true;
    };
    co_await RunBlocking(*blocking_pool_, std::move(clean));
    std::lock_guard lock(mutex_);
    active_.erase(record.id);
    if (slot_held) --running_;
    PumpLocked();
    co_return;
  }

  {
    std::lock_guard lock(mutex_);
    JobRecord& r = job->record;
    r.updated_ms = NowMs();
    if (status.ok()) {
      r.state = JobState::kDone;
      r.result_json = json::serialize(result_json);
      job->progress = 1.0;
    } else {
      r.state = status.code() == StatusCode::kCancelled ? JobState::kCancelled : JobState::kFailed;
      r.error_json = json::serialize(ErrorJson(status));
    }
    r.callback = options.callback_url.empty() ? CallbackState::kNone : CallbackState::kPending;
    r.callback_at_ms = r.updated_ms;
    record = r;
  }
  // Recorded only while the claim holds: a runner whose lease ran out records nothing, so the
  // job ends once, with one result and one callback.
  std::function<StatusOr<bool>()> finish = [this, record] { return jobs_->Finish(record); };
  auto finished = co_await RunBlocking(*blocking_pool_, std::move(finish));
  if (!finished.ok()) {
    spdlog::error("transcoder: {} (the job runs again once its lease runs out)", finished.status().message());
    record.callback = CallbackState::kNone;
  } else if (!*finished) {
    spdlog::warn("transcoder: job claim lost before its end was recorded id={}; the end is dropped", record.id);
    record.callback = CallbackState::kNone;
  } else {
    // Counted as the end becomes visible, so a client that saw the job end sees it counted.
    ended_->Add({{"state", std::string(JobStateName(record.state))}}).Increment();
  }
  if (status.ok()) {
    spdlog::info("transcoder: job done id={}", record.id);
  } else {
    spdlog::warn("transcoder: job {} id={} error=\"{}\"", JobStateName(record.state), record.id, status.ToString());
  }
  std::function<bool()> clean = [scratch] {
    std::error_code ec;
    fs::remove_all(scratch, ec);
    return true;
  };
  co_await RunBlocking(*blocking_pool_, std::move(clean));
  {
    std::lock_guard lock(mutex_);
    active_.erase(record.id);
    if (slot_held) --running_;
    PumpLocked();
  }
  if (record.callback == CallbackState::kPending) co_await DeliverCallback(std::move(record));
}

asio::awaitable<StatusOr<HttpClientResponse>> TranscoderService::CallPeer(const Peer& peer, HttpClientRequest request,
                                                                         std::string_view what, CallOptions options) {
  using Clock = std::chrono::steady_clock;
  request.url = peer.url + request.url;
  request.headers.emplace_back("Authorization", "Bearer " + peer.token);
  for (int attempt = 1;; ++attempt) {
    const auto now = Clock::now();
    if (now >= options.deadline) {
      co_return Status(StatusCode::kDeadlineExceeded,
                       fmt::format("the job's time ran out before the {} at {} answered {}", peer.name, peer.url,
                                   what));
    }
    request.timeout = std::min(options.timeout,
                               std::chrono::duration_cast<std::chrono::milliseconds>(options.deadline - now));
    const bool cut_by_deadline = request.timeout < options.timeout;
    const auto executor = co_await asio::this_coro::executor;
    auto answer = co_await env_.http_client.Send(executor, request);
    if (!answer.ok() && answer.status().code() == StatusCode::kResourceExhausted) {
      co_return Status(StatusCode::kResourceExhausted,
                       fmt::format("the {}'s answer to {} is larger than allowed", peer.name, what));
    }
    if (!answer.ok() && cut_by_deadline && answer.status().code() == StatusCode::kDeadlineExceeded) {
      co_return Status(StatusCode::kDeadlineExceeded,
                       fmt::format("the job's time ran out waiting for the {} at {} ({})", peer.name, peer.url, what));
    }
    if (answer && answer->status < 500 && answer->status != 429) co_return std::move(*answer);
    const auto backoff = std::chrono::milliseconds(500 << std::min(attempt, 6));  // 1 s, 2 s, 4 s ...
    if (attempt >= options.attempts || shutting_down_->load() || Clock::now() + backoff >= options.deadline) {
      co_return Status(StatusCode::kUnavailable,
                       answer ? fmt::format("the {} at {} answered {} to {}", peer.name, peer.url, answer->status, what)
                              : fmt::format("the {} at {} cannot be reached for {}: {}", peer.name, peer.url, what,
                                            answer.status().message()));
    }
    co_await SleepFor(backoff);
  }
}

asio::awaitable<StatusOr<HttpClientResponse>> TranscoderService::CallStreamer(HttpClientRequest request,
                                                                             std::string_view what, int attempts) {
  CallOptions options;
  options.attempts = attempts;
  options.timeout = std::chrono::milliseconds(settings_.streamer_timeout_ms);
  co_return co_await CallPeer(streamer_, std::move(request), what, options);
}

namespace {

// How the copyright stage calls its peers: a few tries (each backing off), each try bounded; the
// job's deadline bounds them all. A match of a long track against a large index takes seconds,
// not minutes.
constexpr int kCopyrightAttempts = 3;
constexpr std::chrono::milliseconds kCopyrightCallTimeout{60'000};
constexpr std::size_t kMatchAnswerLimit = 4 << 20;

json::object ScanFailed(const Status& status) {
  return {{"status", "scan_failed"},
          {"error", StatusCodeName(status.code())},
          {"message", status.message()},
          {"checked_at_ms", NowMs()}};
}

}  // namespace

asio::awaitable<json::object> TranscoderService::MatchFingerprints(const std::string& job_id,
                                                                   const TranscodeResult& result,
                                                                   std::chrono::steady_clock::time_point deadline) {
  const auto& prints = result.fingerprints;
  if (prints.size() != fingerprint_speeds_.size() || prints.empty()) {
    copyright_checks_->Add({{"outcome", "failed"}}).Increment();
    co_return ScanFailed(Status(StatusCode::kInternal, "the transcode made no fingerprint"));
  }
  if (prints.front().empty()) {
    // Chromaprint needs about 2.6 s of audio for its first item: nothing to compare, no check.
    spdlog::info("transcoder: copyright check skipped id={}: too short to fingerprint", job_id);
    co_return json::object{{"status", "skipped"},
                           {"reason", "too_short"},
                           {"message", "the audio is too short to fingerprint"},
                           {"checked_at_ms", NowMs()}};
  }
  // fingerprint_speeds_ starts with 1.0 (media::ParseSpeedList): the audio as uploaded.
  json::array variants;
  for (std::size_t i = 1; i < prints.size(); ++i) {
    variants.push_back(
        json::object{{"speed", fingerprint_speeds_[i]}, {"fingerprint", media::EncodeFingerprint(prints[i])}});
  }
  const json::object body{{"fingerprint", media::EncodeFingerprint(prints.front())},
                          {"duration_s", static_cast<double>(result.facts.duration_ms) / 1000.0},
                          {"variants", std::move(variants)}};
  HttpClientRequest post;
  post.method = http::verb::post;
  post.url = "/v1/match";
  post.headers = {{"Content-Type", "application/json"}};
  post.body = json::serialize(body);
  post.body_limit = kMatchAnswerLimit;
  CallOptions options;
  options.attempts = kCopyrightAttempts;
  options.timeout = kCopyrightCallTimeout;
  options.deadline = deadline;
  auto answer = co_await CallPeer(fingerprint_, std::move(post), "the copyright check", options);

  Status failure;
  json::value doc;
  if (!answer.ok()) {
    failure = answer.status();
  } else if (answer->status != 200) {
    failure = Status(StatusCode::kFailedPrecondition,
                     fmt::format("the fingerprint service refused the copyright check ({}): {}", answer->status,
                                 answer->body.substr(0, 300)));
  } else {
    doc = ParseOr(answer->body);
    const json::value* flagged = doc.is_object() ? doc.as_object().if_contains("is_flagged") : nullptr;
    if (!flagged || !flagged->is_bool()) {
      failure = Status(StatusCode::kInternal, "the fingerprint service's answer is not a match result (no is_flagged)");
    }
  }
  if (!failure.ok()) {
    copyright_checks_->Add({{"outcome", "failed"}}).Increment();
    spdlog::warn("transcoder: copyright check failed id={} error=\"{}\"", job_id, failure.ToString());
    co_return ScanFailed(failure);
  }
  json::object copyright = std::move(doc.as_object());
  copyright["checked_at_ms"] = NowMs();
  const bool flagged = copyright.at("is_flagged").as_bool();
  copyright_checks_->Add({{"outcome", flagged ? "flagged" : "clear"}}).Increment();
  if (flagged) {
    const json::value* dominant = copyright.if_contains("dominant_match");
    spdlog::info("transcoder: copyright check flagged id={} dominant_match=\"{}\"", job_id,
                 dominant && dominant->is_string() ? std::string(dominant->as_string()) : std::string("?"));
  }
  co_return copyright;
}

asio::awaitable<json::object> TranscoderService::EmitCopyrightLabel(const std::string& job_id,
                                                                    const std::string& track_uri,
                                                                    std::chrono::steady_clock::time_point deadline) {
  HttpClientRequest post;
  post.method = http::verb::post;
  post.url = "/emit-label";
  post.headers = {{"Content-Type", "application/json"}};
  post.body = json::serialize(json::object{{"uri", track_uri}, {"val", settings_.label_value}});
  CallOptions options;
  options.attempts = kCopyrightAttempts;
  options.timeout = kCopyrightCallTimeout;
  options.deadline = deadline;
  // A retry after a lost answer may emit the label twice: harmless, the latest event per uri and
  // val is what counts.
  auto answer = co_await CallPeer(labeler_, std::move(post), "a label", options);
  Status failure;
  json::value doc;
  if (!answer.ok()) {
    failure = answer.status();
  } else if (answer->status != 200) {
    failure = Status(StatusCode::kFailedPrecondition, fmt::format("the labeler refused the label ({}): {}",
                                                                  answer->status, answer->body.substr(0, 300)));
  } else {
    doc = ParseOr(answer->body);
    const json::value* seq = doc.is_object() ? doc.as_object().if_contains("seq") : nullptr;
    if (!seq || !seq->is_number()) failure = Status(StatusCode::kInternal, "the labeler answered without a seq");
  }
  if (!failure.ok()) {
    spdlog::warn("transcoder: copyright label not emitted id={} error=\"{}\"", job_id, failure.ToString());
    co_return json::object{{"error", StatusCodeName(failure.code())}, {"message", failure.message()}};
  }
  const json::value seq = doc.at("seq");
  spdlog::info("transcoder: copyright label emitted id={} uri={} val={} seq={}", job_id, track_uri,
               settings_.label_value, json::serialize(seq));
  co_return json::object{{"val", settings_.label_value}, {"seq", seq}};
}

namespace {

// The answer of a streamer call that was reached but said no.
Status StreamerRefused(std::string_view what, const HttpClientResponse& answer) {
  return Status(StatusCode::kFailedPrecondition,
                fmt::format("the streamer refused {} ({}): {}", what, answer.status, answer.body.substr(0, 300)));
}

}  // namespace

asio::awaitable<StatusOr<std::string>> TranscoderService::UploadToStreamer(const fs::path& file,
                                                                          const std::string& content_type) {
  HttpClientRequest put;
  put.method = http::verb::put;
  put.url = "/v1/files";
  put.headers = {{"Content-Type", content_type}};
  put.body_file = file;
  auto answer = co_await CallStreamer(std::move(put), "an upload");
  if (!answer.ok()) co_return answer.status();
  if (answer->status != 200 && answer->status != 201) co_return StreamerRefused("an upload", *answer);
  json::value doc = ParseOr(answer->body);
  if (doc.is_object() && doc.as_object().contains("file_id") && doc.at("file_id").is_string()) {
    co_return std::string(doc.at("file_id").as_string());
  }
  co_return Status(StatusCode::kInternal, "the streamer answered an upload without a file_id");
}

asio::awaitable<Status> TranscoderService::FetchFromStreamer(const std::string& file_id, const fs::path& into) {
  HttpClientRequest get;
  get.url = "/v1/files/" + file_id;
  get.body_limit = settings_.upload_max_bytes;
  get.response_file = into;
  auto answer = co_await CallStreamer(std::move(get), "fetching the input");
  if (!answer.ok()) {
    if (answer.status().code() == StatusCode::kResourceExhausted) {
      co_return Status(StatusCode::kResourceExhausted, "the input is larger than transcoder.upload_max_bytes");
    }
    co_return answer.status();
  }
  if (answer->status == 404) co_return Status(StatusCode::kNotFound, "the job's input is no longer stored");
  if (answer->status != 200) co_return StreamerRefused("fetching the input", *answer);
  co_return OkStatus();
}

asio::awaitable<StatusOr<json::object>> TranscoderService::Publish(const JobRecord& record, const fs::path& input_path,
                                                                  const TranscodeResult& result) {
  const JobOptions options = StoredOptions(record.options_json);
  const json::value input = ParseOr(record.input_json, json::object{});
  const std::string input_id(input.at("file_id").as_string());
  std::string original_type = ContentTypeForContainer(result.facts.container);
  if (const json::value* t = input.as_object().if_contains("content_type"); t && t->is_string()) {
    original_type = std::string(t->as_string());
  }

  auto original = co_await UploadToStreamer(input_path, original_type);
  if (!original.ok()) co_return original.status();
  json::array renditions;
  json::object track_renditions;
  for (const auto& r : result.renditions) {
    auto id = co_await UploadToStreamer(r.path, r.spec.content_type);
    if (!id.ok()) co_return id.status();
    json::object item = RenditionJson(r);
    item["file_id"] = *id;
    renditions.push_back(std::move(item));
    track_renditions[r.spec.name] = json::object{{"file_id", *id}, {"content_type", r.spec.content_type}};
  }
  // A track the streamer already has for these bytes (an earlier job on the same audio) keeps
  // the renditions this job does not remake; owner and gate are this job's. Jobs of this process
  // on the same original publish one at a time, so neither drops the other's renditions.
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (publishing_.insert(*original).second) break;
    }
    co_await SleepFor(std::chrono::milliseconds(50));
  }
  struct Release {
    TranscoderService* service;
    std::string id;
    ~Release() {
      std::lock_guard lock(service->mutex_);
      service->publishing_.erase(id);
    }
  } release{this, *original};
  {
    HttpClientRequest get;
    get.url = "/v1/tracks/" + *original;
    auto existing = co_await CallStreamer(std::move(get), "reading the track", /*attempts=*/1);
    if (existing.ok() && existing->status == 200) {
      json::value doc = ParseOr(existing->body);
      const json::value* kept = doc.is_object() ? doc.as_object().if_contains("renditions") : nullptr;
      if (kept && kept->is_object()) {
        for (const auto& [name, rendition] : kept->as_object()) {
          if (!track_renditions.contains(name)) track_renditions[name] = rendition;
        }
      }
    }
  }
  const json::object track{{"owner_did", options.owner_did},
                           {"gate", options.gate},
                           {"content_type", original_type},
                           {"renditions", track_renditions}};
  HttpClientRequest put;
  put.method = http::verb::put;
  put.url = "/v1/tracks/" + *original;
  put.headers = {{"Content-Type", "application/json"}};
  put.body = json::serialize(track);
  auto registered = co_await CallStreamer(std::move(put), "registering the track");
  if (!registered.ok()) co_return registered.status();
  if (registered->status != 200) co_return StreamerRefused("the track", *registered);
  json::object out{{"original", {{"file_id", *original}, {"content_type", original_type},
                                 {"size", input.at("size")}, {"duration_ms", result.facts.duration_ms}}},
                   {"renditions", std::move(renditions)},
                   {"facts", FactsJson(result.facts)},
                   {"track", {{"file_id", *original}, {"owner_did", options.owner_did}, {"gate", options.gate},
                              {"uri", options.track_uri.empty() ? json::value(nullptr) : json::value(options.track_uri)}}},
                   {"cpu_s", std::round(result.cpu_seconds * 1000) / 1000}};
  co_return out;
}

asio::awaitable<void> TranscoderService::DeliverCallback(JobRecord record) {
  const JobOptions options = StoredOptions(record.options_json);
  if (options.callback_url.empty()) co_return;
  const std::string body = json::serialize(JobJson(record, record.state == JobState::kDone ? 1.0 : 0));
  while (record.callback == CallbackState::kPending) {
    if (shutting_down_->load()) co_return;  // resumed on the next start
    const std::string timestamp = std::to_string(NowMs() / 1000);
    HttpClientRequest post;
    post.method = http::verb::post;
    post.url = options.callback_url;
    post.headers = {{"Content-Type", "application/json"},
                    {"X-Plyr-Job", record.id},
                    {"X-Plyr-Timestamp", timestamp},
                    {"X-Plyr-Signature", "sha256=" + HmacSha256Hex(callback_key_, timestamp + "." + body)}};
    post.body = body;
    post.timeout = std::chrono::seconds(10);
    const auto executor = co_await asio::this_coro::executor;
    auto answer = co_await env_.http_client.Send(executor, post);
    record.callback_attempts += 1;
    const bool delivered = answer && answer->status >= 200 && answer->status < 300;
    callbacks_->Add({{"outcome", delivered                                            ? "delivered"
                                 : record.callback_attempts >= settings_.callback_attempts ? "gave_up"
                                                                                           : "retried"}})
        .Increment();
    if (delivered) {
      record.callback = CallbackState::kDelivered;
    } else if (record.callback_attempts >= settings_.callback_attempts) {
      record.callback = CallbackState::kGaveUp;
      spdlog::warn("transcoder: callback dropped after {} attempts id={}", record.callback_attempts, record.id);
    }
    record.callback_at_ms = NowMs();
    std::function<Status()> note = [this, record] { return jobs_->UpdateCallback(record); };
    if (Status s = co_await RunBlocking(*blocking_pool_, std::move(note)); !s.ok()) {
      spdlog::error("transcoder: {}", s.message());
    }
    if (record.callback != CallbackState::kPending) co_return;
    // 1 s, 2 s, 4 s ... at most a minute apart.
    co_await SleepFor(std::chrono::milliseconds(std::min<std::int64_t>(60'000, 1000ll << std::min(record.callback_attempts - 1, 6))));
  }
}

// ---------------------------------------------------------------------------------------------
// POST /transcode: plyr.fm's Rust transcoder, drop-in

namespace {

// Rust-service error shape, with our "message" beside it.
Response DropInError(http::status status, const std::string& display) {
  return JsonResponse(status, json::object{{"error", display}, {"message", display}});
}

// "my song.flac" -> "my song"; anything unsafe in a header or a path becomes '_'.
std::string SafeStem(const std::optional<std::string>& filename) {
  std::string name = filename.value_or("");
  if (auto slash = name.find_last_of("/\\"); slash != std::string::npos) name = name.substr(slash + 1);
  if (auto dot = name.rfind('.'); dot != std::string::npos && dot > 0) name = name.substr(0, dot);
  std::string stem;
  for (char c : name.substr(0, 200)) {
    const unsigned char u = static_cast<unsigned char>(c);
    stem += (u < 0x20 || u == 0x7f || c == '"' || c == '\\' || c == '/' || c == ';') ? '_' : c;
  }
  if (stem.empty() || stem == "." || stem == "..") stem = "track";
  return stem;
}

// Collects the `file` part's bytes (which the caller writes out after each Feed) and its name.
class FilePartCollector final : public MultipartReader::Handler {
 public:
  Status OnPartBegin(const MultipartPart& part) override {
    in_file_ = part.name == "file" && !seen_file_;
    if (in_file_) {
      seen_file_ = true;
      filename_ = part.filename;
    }
    return OkStatus();
  }
  Status OnPartData(std::string_view bytes) override {
    if (in_file_) pending_.append(bytes);
    return OkStatus();
  }
  Status OnPartEnd() override {
    in_file_ = false;
    return OkStatus();
  }
  std::string& pending() { return pending_; }
  bool seen_file() const { return seen_file_; }
  const std::optional<std::string>& filename() const { return filename_; }

 private:
  bool in_file_ = false;
  bool seen_file_ = false;
  std::optional<std::string> filename_;
  std::string pending_;
};

}  // namespace

asio::awaitable<Response> TranscoderService::DropInTranscode(Request& request) {
  const std::string_view key = request.Field("X-Transcoder-Key");
  const bool authorised = (!key.empty() && !drop_in_key_.empty() && ConstantTimeEquals(key, drop_in_key_)) ||
                          HasAdminToken(request, env_.admin_token);
  if (!authorised) co_return DropInError(http::status::unauthorized, "unauthorized: X-Transcoder-Key is missing or wrong");

  const std::string target = request.Query("target").value_or("mp3");
  std::string rendition_name;
  std::string extension;
  if (target == "mp3") {
    rendition_name = "mp3-320";
  } else if (target == "m4a") {
    rendition_name = "aac-256";
  } else if (target == "wav") {
    rendition_name = "wav";
  } else {
    co_return DropInError(http::status::bad_request, "bad request: unsupported target format '" +
                                                          target.substr(0, 16) + "' (use mp3, wav or m4a)");
  }
  auto spec = ParseRendition(rendition_name);
  auto boundary = MultipartBoundary(request.Field(http::field::content_type));
  if (!boundary.ok()) co_return DropInError(http::status::bad_request, "bad request: " + boundary.status().message());
  const std::uint64_t limit = settings_.upload_max_bytes;
  if (auto length = request.ContentLength(); length && *length > limit) {
    co_return DropInError(http::status::payload_too_large,
                          fmt::format("payload too large: uploads are limited to {} bytes", limit));
  }

  auto writer = drop_in_uploads_->Begin(co_await asio::this_coro::executor);
  if (!writer) co_return DropInError(http::status::internal_server_error, "io error: cannot store the upload");
  FilePartCollector collector;
  MultipartReader reader(std::move(*boundary), collector);
  std::vector<char> buffer(kUploadChunk);
  std::uint64_t received = 0;
  for (;;) {
    auto got = co_await request.ReadSome(buffer);
    if (auto* e = std::get_if<BodyError>(&got)) {
      Response r = ErrorResponseFor(*e, limit);
      co_return DropInError(r.header.result(), "bad request: failed to read upload chunk");
    }
    const std::size_t n = std::get<std::size_t>(got);
    if (n == 0) break;
    received += n;
    if (received > limit) {
      co_return DropInError(http::status::payload_too_large,
                            fmt::format("payload too large: uploads are limited to {} bytes", limit));
    }
    if (auto s = reader.Feed(std::string_view(buffer.data(), n)); !s.ok()) {
      co_return DropInError(http::status::bad_request, "bad request: " + s.message());
    }
    if (!collector.pending().empty()) {
      if (Status written = co_await (*writer)->Write(collector.pending()); !written.ok()) {
        co_return DropInError(http::status::internal_server_error, "io error: " + written.message());
      }
      collector.pending().clear();
    }
  }
  if (auto s = reader.Finish(); !s.ok()) co_return DropInError(http::status::bad_request, "bad request: " + s.message());
  if (!collector.seen_file()) {
    co_return DropInError(http::status::bad_request, "bad request: multipart form must include a 'file' field");
  }
  if ((*writer)->size() == 0) co_return DropInError(http::status::bad_request, "bad request: the file field is empty");
  std::function<StatusOr<BlobInfo>()> commit = [w = writer->get()] { return w->Commit(); };
  auto committed = co_await RunBlocking(*blocking_pool_, std::move(commit));
  if (!committed.ok()) {
    co_return DropInError(http::status::internal_server_error, "io error: " + committed.status().message());
  }

  const fs::path scratch = work_dir_ / ("transcode-" + RandomHex(8));
  std::error_code ec;
  fs::create_directories(scratch, ec);
  if (ec) co_return DropInError(http::status::internal_server_error, "io error: " + ec.message());
  TranscodeRequest transcode;
  transcode.input = drop_in_uploads_->PathFor(committed->file_id);
  transcode.output_dir = scratch;
  transcode.renditions = {*spec};
  transcode.analyze = false;
  transcode.max_duration_ms = settings_.max_duration_s * 1000;
  transcode.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(settings_.job_timeout_s);
  transcode.cancel = shutting_down_;
  auto result = co_await RunTranscode(std::move(transcode));

  const fs::path input_path = drop_in_uploads_->PathFor(committed->file_id);
  Response response;
  if (!result.ok()) {
    const Status& s = result.status();
    const bool client_fault = s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kUnimplemented;
    response = DropInError(client_fault ? http::status::bad_request : http::status::internal_server_error,
                           (client_fault ? "bad request: " : "ffmpeg error: ") + s.message());
  } else {
    const RenditionOutput& out = result->renditions.front();
    auto fd = OpenFile(out.path, O_RDONLY);
    if (!fd.ok()) {
      response = DropInError(http::status::internal_server_error, "io error: " + fd.status().message());
    } else {
      response.header.result(http::status::ok);
      response.header.set(http::field::content_type, out.spec.content_type);
      response.header.set(http::field::content_disposition,
                          "attachment; filename=\"" + SafeStem(collector.filename()) + "." + target + "\"");
      // The open descriptor keeps the bytes readable after the folder is removed below.
      response.segments.emplace_back(FileSlice{std::make_shared<const UniqueFd>(std::move(*fd)), 0, out.size});
    }
  }
  // The drop-in keeps nothing. Two requests with the same bytes share the upload's name; the
  // second may find it gone, which its transcode reports as an error (a client retry succeeds).
  std::function<bool()> clean = [scratch, input_path] {
    std::error_code ignored;
    fs::remove_all(scratch, ignored);
    fs::remove(input_path, ignored);
    return true;
  };
  co_await RunBlocking(*blocking_pool_, std::move(clean));
  co_return response;
}

}  // namespace plyr::transcoder
