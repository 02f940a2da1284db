#include "fingerprint/fingerprint_service.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <unordered_set>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include "common/comma_list.h"
#include "common/did.h"
#include "common/random.h"
#include "common/run_blocking.h"
#include "common/upload.h"
#include "fingerprint/audio_fingerprint.h"

namespace plyr::fingerprint {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr std::size_t kJsonBodyLimit = 16 << 20;  // a 4-hour fingerprint is about 250 KB compressed
constexpr std::size_t kListLimitMax = 500;
constexpr std::size_t kTextFieldMax = 512;

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Round3(double v) { return std::round(v * 1000) / 1000; }

bool IsValidRefId(std::string_view id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsJson(const Request& request) {
  const std::string_view type = request.Field(http::field::content_type);
  return type.starts_with("application/json");
}

Response Refuse(http::status status, std::string_view error, std::string_view message) {
  return ErrorResponse(status, error, message);
}

// A text member of a JSON object (absent or null: empty); false when present but not text or
// too long.
bool TextMember(const json::object& o, std::string_view key, std::string& out) {
  const json::value* v = o.if_contains(key);
  if (!v || v->is_null()) return true;
  if (!v->is_string() || v->as_string().size() > kTextFieldMax) return false;
  out = std::string(v->as_string());
  return true;
}

}  // namespace

void AddFingerprintSettings(CLI::App& command, const SettingsFile& file, FingerprintSettings& s) {
  file.Bind(command, "fingerprint.listen", s.listen, "Fingerprint service listen address (host:port)");
  file.Bind(command, "fingerprint.workers", s.workers, "Fingerprinting and matching threads (0: one per core)");
  file.Bind(command, "fingerprint.upload_max_bytes", s.upload_max_bytes, "Largest audio body a request takes");
  file.Bind(command, "fingerprint.max_duration_s", s.max_duration_s, "Longest audio fingerprinted (seconds)");
  file.Bind(command, "fingerprint.speeds", s.speeds,
            "Speed-ups a match undoes: each query is also fingerprinted at these speeds (1 is always in)");
  file.Bind(command, "fingerprint.max_ber", s.max_ber,
            "A window matches a reference at this bit error rate or under (the operating threshold)");
  file.Bind(command, "fingerprint.min_contrast", s.min_contrast,
            "... and at least this far under the window's bit error rate against the rest of the work");
  file.Bind(command, "fingerprint.min_activity", s.min_activity,
            "... and only where the audio changes this much within a window on both sides (not sustained sound)");
  file.Bind(command, "fingerprint.min_distinct", s.min_distinct,
            "Guard: windows with fewer distinct items per item than this are not matched (silence, drones)");
  file.Bind(command, "fingerprint.key_bits", s.key_bits, "Index key: the top bits of an item (12-28)");
  file.Bind(command, "fingerprint.flag_dominant_pct", s.flag_dominant_pct,
            "is_flagged when one work holds this share (%) of the matched windows");
  file.Bind(command, "fingerprint.flag_sustained_songs", s.flag_sustained_songs,
            "is_flagged when this many works are each matched in 3 or more windows (a mix)");
  file.Bind(command, "fingerprint.streamer_url", s.streamer_url,
            "Streamer that stores files named by {\"file_id\"} (default: http://127.0.0.1:8410)");
  file.BindSecret(command, "fingerprint.streamer_token", s.streamer_token,
                  "The streamer's admin token (default: this process's admin token)");
  file.Bind(command, "fingerprint.streamer_timeout_ms", s.streamer_timeout_ms, "Deadline of one fetch from the streamer");
}

FingerprintService::FingerprintService(ServiceEnv& env, const FingerprintSettings& settings)
    : env_(env), settings_(settings) {}

FingerprintService::~FingerprintService() {
  listener_.reset();
  if (worker_pool_) worker_pool_->join();
  if (blocking_pool_) blocking_pool_->join();
}

namespace {

// The references on PostgreSQL when database.url names it, else in SQLite in the data folder.
StatusOr<std::unique_ptr<ReferenceStore>> OpenStore(const ServiceEnv& env, const fs::path& dir) {
  if (env.database_url.empty()) {
    auto db = SqliteDb::Open(dir / "references.db");
    if (!db.ok()) return Status(db.status().code(), "cannot open the reference database: " + db.status().message());
    return OpenSqliteReferenceStore(std::move(*db));
  }
  auto db = PgDb::Open(env.database_url, env.database_connections);
  if (!db.ok()) return Status(db.status().code(), "the reference database: " + db.status().message());
  return OpenPgReferenceStore(std::shared_ptr<PgDb>(std::move(*db)));
}

}  // namespace

StatusOr<std::unique_ptr<FingerprintService>> FingerprintService::Create(ServiceEnv& env,
                                                                          const FingerprintSettings& settings) {
  std::unique_ptr<FingerprintService> service(new FingerprintService(env, settings));
  if (settings.max_duration_s <= 0 || settings.upload_max_bytes == 0 || settings.streamer_timeout_ms <= 0) {
    return Status(StatusCode::kInvalidArgument,
                  "fingerprint limits must be positive (max_duration_s, upload_max_bytes, streamer_timeout_ms)");
  }
  if (!(settings.max_ber > 0 && settings.max_ber < 0.5)) {
    return Status(StatusCode::kInvalidArgument, "fingerprint.max_ber must be between 0 and 0.5");
  }
  if (!(settings.min_distinct >= 0 && settings.min_distinct <= 1) ||
      !(settings.min_contrast >= 0 && settings.min_contrast <= 0.5) ||
      !(settings.min_activity >= 0 && settings.min_activity <= 0.5)) {
    return Status(StatusCode::kInvalidArgument,
                  "fingerprint.min_distinct must be between 0 and 1, min_contrast and min_activity between 0 and 0.5");
  }
  if (settings.key_bits < 12 || settings.key_bits > 28) {
    return Status(StatusCode::kInvalidArgument, "fingerprint.key_bits must be from 12 to 28");
  }
  if (settings.flag_dominant_pct < 1 || settings.flag_dominant_pct > 100 || settings.flag_sustained_songs < 1) {
    return Status(StatusCode::kInvalidArgument,
                  "fingerprint.flag_dominant_pct must be 1-100 and flag_sustained_songs at least 1");
  }
  auto speeds = media::ParseSpeedList(settings.speeds);
  if (!speeds.ok()) return Status(StatusCode::kInvalidArgument, "fingerprint.speeds: " + speeds.status().message());
  service->speeds_ = std::move(*speeds);
  service->match_options_.max_ber = settings.max_ber;
  service->match_options_.min_distinct = settings.min_distinct;
  service->match_options_.min_contrast = settings.min_contrast;
  service->match_options_.min_activity = settings.min_activity;

  const fs::path dir = env.data_dir / "fingerprint";
  service->work_dir_ = dir / "work";
  std::error_code ec;
  fs::remove_all(service->work_dir_, ec);  // queries a previous run was reading
  fs::create_directories(service->work_dir_, ec);
  if (ec) return Status(StatusCode::kInternal, "cannot create " + service->work_dir_.string() + ": " + ec.message());
  auto uploads = BlobStore::Open(service->work_dir_ / "uploads");
  if (!uploads.ok()) return Status(uploads.status().code(), "the query store: " + uploads.status().message());
  service->uploads_ = std::move(*uploads);

  auto store = OpenStore(env, dir);
  if (!store.ok()) return store.status();
  service->store_ = std::move(*store);

  // Load every reference into the index: a batch at a time, one rebuild at the end.
  ReferenceIndexOptions index_options;
  index_options.key_bits = settings.key_bits;
  service->index_ = std::make_unique<ReferenceIndex>(index_options);
  const auto load_start = std::chrono::steady_clock::now();
  std::vector<ReferenceIndex::Entry> entries;
  Status loaded = service->store_->LoadAll(
      [&](std::vector<ReferenceRecord>&& batch) {
        for (auto& r : batch) {
          service->RememberLocked(static_cast<ReferenceIndex::RefId>(r.row),
                                  RefInfo{r.id, r.title, r.artist, r.owner_did, r.isrc, r.duration_s});
          entries.push_back({static_cast<ReferenceIndex::RefId>(r.row), std::move(r.items)});
        }
        service->index_->Load(entries);
        entries.clear();
      },
      1024);
  if (!loaded.ok()) return loaded;
  service->index_->Compact();  // one counting sort over everything loaded
  const auto stats = service->index_->stats();
  spdlog::info("fingerprint: index loaded references={} items={} memory_mb={:.1f} seconds={:.2f}", stats.references,
               stats.items, stats.memory_bytes / 1e6,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count());

  service->streamer_url_ = settings.streamer_url.empty() ? "http://127.0.0.1:8410" : settings.streamer_url;
  while (!service->streamer_url_.empty() && service->streamer_url_.back() == '/') service->streamer_url_.pop_back();
  if (!boost::urls::parse_uri(service->streamer_url_)) {
    return Status(StatusCode::kInvalidArgument, "fingerprint.streamer_url is not a URL: " + settings.streamer_url);
  }
  service->streamer_token_ = settings.streamer_token.empty() ? env.admin_token : settings.streamer_token;

  service->worker_pool_ = std::make_unique<asio::thread_pool>(WorkerThreads(settings.workers));
  service->blocking_pool_ = std::make_unique<asio::thread_pool>(2);

  HttpServerOptions options = env.server_defaults;
  options.service = "fingerprint";
  auto server = ListenForService(env, settings.listen, service->BuildRouter(), options);
  if (!server.ok()) return server.status();
  service->server_ = std::move(*server);

  auto& registry = env.metrics.registry();
  service->matches_ = &prometheus::BuildCounter()
                           .Name("plyr_fingerprint_matches_total")
                           .Help("Match requests by outcome (clear, matched, flagged)")
                           .Register(registry);
  auto& refs_family =
      prometheus::BuildGauge().Name("plyr_fingerprint_references").Help("Reference works in the index").Register(registry);
  service->references_gauge_ = &refs_family.Add({});
  auto& bytes_family = prometheus::BuildGauge()
                           .Name("plyr_fingerprint_index_bytes")
                           .Help("Memory held by the reference index")
                           .Register(registry);
  service->index_bytes_gauge_ = &bytes_family.Add({});
  service->references_gauge_->Set(static_cast<double>(stats.references));
  service->index_bytes_gauge_->Set(static_cast<double>(stats.memory_bytes));

  // Instances sharing a PostgreSQL database hear of each other's changes.
  if (!env.database_url.empty()) {
    FingerprintService* self = service.get();
    auto listener = PgListener::Start(env.database_url, std::string(kReferenceChannel),
                                      [self](bool resync, const std::string& payload) {
                                        self->OnReferenceChange(resync, payload);
                                      });
    if (!listener.ok()) return listener.status();
    service->listener_ = std::move(*listener);
  }
  return service;
}

Router FingerprintService::BuildRouter() {
  Router router;
  router.Add(http::verb::post, "/v1/fingerprint", this, &FingerprintService::Fingerprint);
  router.Add(http::verb::post, "/v1/references", this, &FingerprintService::AddReference);
  router.Add(http::verb::get, "/v1/references", this, &FingerprintService::ListReferences);
  router.Add(http::verb::get, "/v1/references/{id}", this, &FingerprintService::GetReference);
  router.Add(http::verb::delete_, "/v1/references/{id}", this, &FingerprintService::DeleteReference);
  router.Add(http::verb::post, "/v1/match", this, &FingerprintService::Match);
  router.Add(http::verb::get, "/v1/index", this, &FingerprintService::IndexStats);
  return router;
}

// ---------------------------------------------------------------------------------------------
// Reading audio and fingerprints

asio::awaitable<StatusOr<FingerprintService::Prints>> FingerprintService::FingerprintAudio(fs::path path,
                                                                                          std::vector<double> speeds) {
  const std::int64_t max_ms = settings_.max_duration_s * 1000;
  std::function<StatusOr<Prints>()> work = [path = std::move(path), speeds = std::move(speeds),
                                            max_ms]() -> StatusOr<Prints> {
    AudioFingerprintOptions options;
    options.speeds = speeds;
    options.max_duration_ms = max_ms;
    auto fp = FingerprintFile(path, options);
    if (!fp.ok()) return fp.status();
    Prints p;
    p.duration_s = fp->duration_s;
    p.speeds = speeds;
    p.items = std::move(fp->by_speed);
    p.title = std::move(fp->title);
    p.artist = std::move(fp->artist);
    return p;
  };
  co_return co_await RunBlocking(*worker_pool_, std::move(work));
}

asio::awaitable<Status> FingerprintService::FetchFromStreamer(const std::string& file_id, const fs::path& into) {
  HttpClientRequest get;
  get.url = streamer_url_ + "/v1/files/" + file_id;
  get.headers = {{"Authorization", "Bearer " + streamer_token_}};
  get.timeout = std::chrono::milliseconds(settings_.streamer_timeout_ms);
  get.response_file = into;
  auto executor = co_await asio::this_coro::executor;
  auto answer = co_await env_.http_client.Send(executor, std::move(get));
  if (!answer) {
    co_return Status(StatusCode::kUnavailable, "cannot reach the streamer: " + answer.status().message());
  }
  if (answer->status == 404) co_return Status(StatusCode::kNotFound, "no file with this file_id is stored in the streamer");
  if (answer->status != 200) {
    co_return Status(StatusCode::kUnavailable, "the streamer answered " + std::to_string(answer->status));
  }
  co_return OkStatus();
}

asio::awaitable<std::variant<FingerprintService::Prints, Response>> FingerprintService::ReadPrints(
    Request& request, const std::vector<double>& speeds, json::object* json_out) {
  if (!IsJson(request)) {
    // The body is the audio: streamed to a temporary file, fingerprinted, and dropped.
    auto received = co_await ReceiveUpload(request, *uploads_, settings_.upload_max_bytes, "fingerprint");
    if (auto* refused = std::get_if<Response>(&received)) co_return std::move(*refused);
    auto writer = std::move(std::get<std::unique_ptr<BlobStore::Writer>>(received));
    if (writer->size() == 0) {
      co_return Refuse(http::status::bad_request, "EmptyBody", "the request body (the audio) is empty");
    }
    auto prints = co_await FingerprintAudio(writer->temp_path(), speeds);
    if (!prints.ok()) {
      if (prints.status().code() == StatusCode::kResourceExhausted) {
        co_return Refuse(http::status::payload_too_large, "AudioTooLong", prints.status().message());
      }
      co_return ErrorResponseFor(prints.status());
    }
    co_return std::move(*prints);
  }

  auto body = co_await request.ReadAll(kJsonBodyLimit);
  if (auto* error = std::get_if<BodyError>(&body)) co_return ErrorResponseFor(*error, kJsonBodyLimit);
  boost::system::error_code ec;
  json::value parsed = json::parse(std::get<std::string>(body), ec);
  if (ec || !parsed.is_object()) {
    co_return Refuse(http::status::bad_request, "InvalidJson", "the body is not a JSON object");
  }
  json::object& o = parsed.as_object();
  if (json_out) *json_out = o;

  if (const json::value* id = o.if_contains("file_id")) {
    if (!id->is_string() || !BlobStore::IsValidId(id->as_string())) {
      co_return Refuse(http::status::bad_request, "InvalidRequest", "file_id must be 16 lowercase hex characters");
    }
    const fs::path into = work_dir_ / ("fetch-" + RandomHex(8));
    Status fetched = co_await FetchFromStreamer(std::string(id->as_string()), into);
    if (!fetched.ok()) {
      std::error_code rm;
      fs::remove(into, rm);
      if (fetched.code() == StatusCode::kNotFound) {
        co_return Refuse(http::status::not_found, "FileNotFound", fetched.message());
      }
      co_return Refuse(http::status::bad_gateway, "StreamerUnavailable", fetched.message());
    }
    auto prints = co_await FingerprintAudio(into, speeds);
    std::error_code rm;
    fs::remove(into, rm);
    if (!prints.ok()) {
      if (prints.status().code() == StatusCode::kResourceExhausted) {
        co_return Refuse(http::status::payload_too_large, "AudioTooLong", prints.status().message());
      }
      co_return ErrorResponseFor(prints.status());
    }
    co_return std::move(*prints);
  }

  const json::value* text = o.if_contains("fingerprint");
  if (!text) {
    co_return Refuse(http::status::bad_request, "InvalidRequest",
                     "a JSON body names a stored file {\"file_id\"} or carries {\"fingerprint\"} (as fpcalc prints it)");
  }
  // A print has about 8.08 items a second, times its speed (variants up to 1.25).
  const std::size_t max_items = static_cast<std::size_t>(static_cast<double>(settings_.max_duration_s) * 8.08 * 1.25) + 64;
  Prints p;
  auto add = [&](const json::value* v, double speed) -> std::optional<Response> {
    if (!v->is_string()) {
      return Refuse(http::status::bad_request, "InvalidFingerprint", "a fingerprint is a string (as fpcalc prints it)");
    }
    auto items = media::DecodeFingerprint(v->as_string(), max_items);
    if (!items.ok()) return Refuse(http::status::bad_request, "InvalidFingerprint", items.status().message());
    p.speeds.push_back(speed);
    p.items.push_back(std::move(*items));
    return std::nullopt;
  };
  if (auto refused = add(text, 1.0)) co_return std::move(*refused);
  if (const json::value* variants = o.if_contains("variants")) {
    if (!variants->is_array() || variants->as_array().size() > 8) {
      co_return Refuse(http::status::bad_request, "InvalidRequest",
                       "variants is a list of at most 8 {\"speed\", \"fingerprint\"}");
    }
    for (const auto& v : variants->as_array()) {
      const json::object* vo = v.if_object();
      const json::value* speed = vo ? vo->if_contains("speed") : nullptr;
      const json::value* fp = vo ? vo->if_contains("fingerprint") : nullptr;
      double s = speed && speed->is_number() ? speed->to_number<double>() : 0;
      if (!fp || !(s >= 0.8 && s <= 1.25)) {
        co_return Refuse(http::status::bad_request, "InvalidRequest",
                         "each variant is {\"speed\": 0.8-1.25, \"fingerprint\": \"...\"}");
      }
      if (auto refused = add(fp, s)) co_return std::move(*refused);
    }
  }
  const json::value* duration = o.if_contains("duration_s");
  if (duration && !duration->is_null() && !(duration->is_number() && duration->to_number<double>() >= 0)) {
    co_return Refuse(http::status::bad_request, "InvalidRequest", "duration_s is a number of seconds");
  }
  // Without a stated duration: what the items cover (plus Chromaprint's 2.6 s start-up delay).
  p.duration_s = duration && duration->is_number()
                     ? duration->to_number<double>()
                     : static_cast<double>(p.items[0].size()) * media::kItemSeconds + 2.6;
  co_return p;
}

// ---------------------------------------------------------------------------------------------
// Handlers

asio::awaitable<Response> FingerprintService::Fingerprint(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::vector<double> as_given{1.0};  // a named local: GCC 12 mishandles temporaries in co_await
  auto read = co_await ReadPrints(request, as_given, nullptr);
  if (auto* refused = std::get_if<Response>(&read)) co_return std::move(*refused);
  Prints& p = std::get<Prints>(read);
  if (p.items[0].empty()) {
    co_return Refuse(http::status::unprocessable_entity, "AudioTooShort",
                     "the audio is too short to fingerprint (Chromaprint needs about 3 s)");
  }
  json::object out{{"duration_s", Round3(p.duration_s)},
                   {"fingerprint", media::EncodeFingerprint(p.items[0])},
                   {"items", p.items[0].size()},
                   {"algorithm", 2}};
  if (const auto raw = request.Query("raw"); raw && (*raw == "1" || *raw == "true")) {
    json::array items;
    for (std::uint32_t item : p.items[0]) items.push_back(static_cast<std::int64_t>(static_cast<std::int32_t>(item)));
    out["raw"] = std::move(items);  // signed, as `fpcalc -raw -signed` prints them
  }
  co_return JsonResponse(http::status::ok, out);
}

asio::awaitable<Response> FingerprintService::AddReference(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  ReferenceRecord record;
  // Metadata from the query string (an audio body) or the JSON members.
  const std::array<std::pair<std::string_view, std::string*>, 4> fields = {
      {{"title", &record.title}, {"artist", &record.artist}, {"owner_did", &record.owner_did}, {"isrc", &record.isrc}}};
  for (const auto& [key, field] : fields) {
    if (auto v = request.Query(key)) {
      if (v->size() > kTextFieldMax) {
        co_return Refuse(http::status::bad_request, "InvalidRequest", std::string(key) + " is too long");
      }
      *field = *v;
    }
  }
  json::object body;
  const std::vector<double> as_given{1.0};
  auto read = co_await ReadPrints(request, as_given, &body);
  if (auto* refused = std::get_if<Response>(&read)) co_return std::move(*refused);
  Prints& p = std::get<Prints>(read);
  for (const auto& [key, field] : fields) {
    if (!TextMember(body, key, *field)) {
      co_return Refuse(http::status::bad_request, "InvalidRequest", std::string(key) + " must be a short string");
    }
  }
  if (const json::value* ids = body.if_contains("external_ids")) {
    if (!ids->is_object() || json::serialize(*ids).size() > 4096) {
      co_return Refuse(http::status::bad_request, "InvalidRequest", "external_ids is a small JSON object");
    }
    record.external_ids_json = json::serialize(*ids);
  }
  if (record.title.empty()) record.title = p.title;
  if (record.artist.empty()) record.artist = p.artist;
  if (record.title.empty()) {
    co_return Refuse(http::status::bad_request, "InvalidRequest",
                     "a reference needs a title (?title= or \"title\", or a title tag in the audio)");
  }
  if (!record.owner_did.empty() && !IsPlausibleDid(record.owner_did)) {
    co_return Refuse(http::status::bad_request, "InvalidRequest", "owner_did is not a DID");
  }
  if (static_cast<int>(p.items[0].size()) < match_options_.min_window_items) {
    co_return Refuse(http::status::unprocessable_entity, "AudioTooShort",
                     "a reference must be at least about 8 s long to be matched");
  }
  if (!HasInformativeWindow(p.items[0], match_options_)) {
    // Silence or a drone from end to end would match nothing, and could never be found.
    co_return Refuse(http::status::unprocessable_entity, "NotMatchable",
                     "the audio is silence or too uniform (a drone) to be recognised");
  }
  // The same work registered again (another encoding of it): refuse unless asked.
  const auto allow = request.Query("allow_duplicate");
  if (!(allow && (*allow == "1" || *allow == "true"))) {
    std::function<MatchResult()> probe = [this, items = p.items[0]] {
      const QueryVariant variant{1.0, items};
      return FindMatches(*index_, std::span(&variant, 1), match_options_);
    };
    MatchResult existing = co_await RunBlocking(*worker_pool_, std::move(probe));
    for (const auto& m : existing.matches) {
      if (m.duration_s >= 0.8 * p.duration_s - 15) {
        const std::string id = RefIdFor(m.ref);
        if (id.empty()) continue;
        Response r = JsonResponse(http::status::conflict,
                                  json::object{{"error", "AlreadyExists"},
                                               {"message", "this audio is already registered as reference " + id +
                                                               " (add ?allow_duplicate=1 to register it again)"},
                                               {"reference_id", id}});
        co_return r;
      }
    }
  }

  record.id = RandomHex(8);
  record.duration_s = p.duration_s;
  record.created_ms = NowMs();
  record.items = std::move(p.items[0]);
  std::function<StatusOr<ReferenceRecord>()> insert = [this, record = std::move(record)]() mutable
      -> StatusOr<ReferenceRecord> {
    if (Status s = store_->Insert(record); !s.ok()) return s;
    IndexReference(record);
    return std::move(record);
  };
  auto inserted = co_await RunBlocking(*blocking_pool_, std::move(insert));
  if (!inserted.ok()) {
    if (inserted.status().code() == StatusCode::kAlreadyExists) {
      co_return Refuse(http::status::conflict, "AlreadyExists", inserted.status().message());
    }
    spdlog::error("fingerprint: cannot store a reference error=\"{}\"", inserted.status().message());
    co_return ErrorResponseFor(inserted.status());
  }
  spdlog::info("fingerprint: reference added id={} items={}", inserted->id, inserted->items.size());
  json::object out{{"id", inserted->id},           {"title", inserted->title},
                   {"artist", inserted->artist},   {"owner_did", inserted->owner_did},
                   {"isrc", inserted->isrc},       {"duration_s", Round3(inserted->duration_s)},
                   {"items", inserted->items.size()}};
  Response r = JsonResponse(http::status::created, out);
  r.header.set(http::field::location, "/v1/references/" + inserted->id);
  co_return r;
}

namespace {

json::object ReferenceJson(const ReferenceRecord& r) {
  json::object o{{"id", r.id},
                 {"title", r.title},
                 {"artist", r.artist},
                 {"owner_did", r.owner_did.empty() ? json::value(nullptr) : json::value(r.owner_did)},
                 {"isrc", r.isrc.empty() ? json::value(nullptr) : json::value(r.isrc)},
                 {"duration_s", Round3(r.duration_s)},
                 {"created_at_ms", r.created_ms}};
  boost::system::error_code ec;
  json::value ids = json::parse(r.external_ids_json, ec);
  o["external_ids"] = ec ? json::value(json::object{}) : ids;
  return o;
}

}  // namespace

asio::awaitable<Response> FingerprintService::ListReferences(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  std::size_t limit = 100;
  std::int64_t before = 0;
  if (auto v = request.Query("limit")) {
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), limit);
    if (ec != std::errc() || end != v->data() + v->size() || limit == 0 || limit > kListLimitMax) {
      co_return Refuse(http::status::bad_request, "InvalidRequest", "limit is 1-500");
    }
  }
  if (auto v = request.Query("before")) {
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), before);
    if (ec != std::errc() || end != v->data() + v->size() || before < 0) {
      co_return Refuse(http::status::bad_request, "InvalidRequest", "before is the `next` of an earlier page");
    }
  }
  std::function<StatusOr<std::vector<ReferenceRecord>>()> list = [this, before, limit] {
    return store_->List(before, limit);
  };
  auto records = co_await RunBlocking(*blocking_pool_, std::move(list));
  if (!records.ok()) co_return ErrorResponseFor(records.status());
  json::array items;
  for (const auto& r : *records) items.push_back(ReferenceJson(r));
  json::object out{{"references", std::move(items)}};
  out["next"] = records->size() == limit ? json::value(records->back().row) : json::value(nullptr);
  co_return JsonResponse(http::status::ok, out);
}

asio::awaitable<Response> FingerprintService::GetReference(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string id = *request.Param("id");
  if (!IsValidRefId(id)) co_return Refuse(http::status::not_found, "NotFound", "no reference with this id");
  const auto with = request.Query("fingerprint");
  const bool with_items = with && (*with == "1" || *with == "true");
  std::function<StatusOr<ReferenceRecord>()> get = [this, id, with_items] { return store_->Get(id, with_items); };
  auto record = co_await RunBlocking(*blocking_pool_, std::move(get));
  if (!record.ok()) co_return ErrorResponseFor(record.status());
  json::object out = ReferenceJson(*record);
  if (with_items) out["fingerprint"] = media::EncodeFingerprint(record->items);
  co_return JsonResponse(http::status::ok, out);
}

asio::awaitable<Response> FingerprintService::DeleteReference(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string id = *request.Param("id");
  if (!IsValidRefId(id)) co_return Refuse(http::status::not_found, "NotFound", "no reference with this id");
  std::function<Status()> remove = [this, id] {
    if (Status s = store_->Delete(id); !s.ok()) return s;
    std::optional<ReferenceIndex::RefId> row;
    {
      std::lock_guard lock(refs_mutex_);
      if (auto it = row_by_id_.find(id); it != row_by_id_.end()) row = it->second;
    }
    if (row) UnindexRow(*row);
    return OkStatus();
  };
  Status removed = co_await RunBlocking(*blocking_pool_, std::move(remove));
  if (!removed.ok()) co_return ErrorResponseFor(removed);
  spdlog::info("fingerprint: reference removed id={}", id);
  co_return JsonResponse(http::status::ok, json::object{{"id", id}, {"deleted", true}});
}

void FingerprintService::IndexReference(const ReferenceRecord& r) {
  const auto row = static_cast<ReferenceIndex::RefId>(r.row);
  index_->Add(row, r.items);  // replaces an earlier one of the same row
  {
    std::lock_guard lock(refs_mutex_);
    RememberLocked(row, RefInfo{r.id, r.title, r.artist, r.owner_did, r.isrc, r.duration_s});
  }
  UpdateIndexGauges();
}

void FingerprintService::UnindexRow(ReferenceIndex::RefId row) {
  {
    std::lock_guard lock(refs_mutex_);
    auto it = refs_.find(row);
    if (it == refs_.end()) return;
    row_by_id_.erase(it->second.id);
    refs_.erase(it);
  }
  index_->Remove(row);
  UpdateIndexGauges();
}

void FingerprintService::UpdateIndexGauges() {
  const auto stats = index_->stats();
  references_gauge_->Set(static_cast<double>(stats.references));
  index_bytes_gauge_->Set(static_cast<double>(stats.memory_bytes));
}

void FingerprintService::OnReferenceChange(bool resync, const std::string& payload) {
  if (resync) {
    SyncWithStore();
    return;
  }
  std::int64_t row = 0;
  const bool add = payload.starts_with("add "), del = payload.starts_with("del ");
  if ((!add && !del) || std::from_chars(payload.data() + 4, payload.data() + payload.size(), row).ec != std::errc()) {
    spdlog::warn("fingerprint: an announcement not understood payload=\"{}\"", payload);
    return;
  }
  if (del) {
    UnindexRow(static_cast<ReferenceIndex::RefId>(row));
    return;
  }
  {
    std::lock_guard lock(refs_mutex_);
    if (refs_.contains(static_cast<ReferenceIndex::RefId>(row))) return;  // this instance's own
  }
  auto records = store_->GetRows({row});
  if (!records.ok()) {
    // The next resync (a reconnect) or announcement catches up; matching goes on meanwhile.
    spdlog::warn("fingerprint: cannot read an announced reference row={} error=\"{}\"", row,
                 records.status().message());
    return;
  }
  for (const auto& r : *records) IndexReference(r);
}

void FingerprintService::SyncWithStore() {
  auto stored = store_->Rows();
  if (!stored.ok()) {
    spdlog::warn("fingerprint: cannot compare the index with the database error=\"{}\"", stored.status().message());
    return;
  }
  std::vector<std::int64_t> missing;
  std::vector<ReferenceIndex::RefId> gone;
  {
    std::lock_guard lock(refs_mutex_);
    std::unordered_set<std::int64_t> in_store(stored->begin(), stored->end());
    for (std::int64_t row : *stored) {
      if (!refs_.contains(static_cast<ReferenceIndex::RefId>(row))) missing.push_back(row);
    }
    for (const auto& [row, info] : refs_) {
      if (!in_store.contains(static_cast<std::int64_t>(row))) gone.push_back(row);
    }
  }
  for (auto row : gone) UnindexRow(row);
  auto records = store_->GetRows(missing);
  if (!records.ok()) {
    spdlog::warn("fingerprint: cannot read references to index error=\"{}\"", records.status().message());
    return;
  }
  for (const auto& r : *records) IndexReference(r);
  if (!missing.empty() || !gone.empty()) {
    spdlog::info("fingerprint: index brought in line with the database added={} removed={}", records->size(),
                 gone.size());
  }
}

void FingerprintService::RememberLocked(ReferenceIndex::RefId row, RefInfo info) {
  row_by_id_[info.id] = row;
  refs_[row] = std::move(info);
}

std::string FingerprintService::RefIdFor(ReferenceIndex::RefId row) const {
  std::lock_guard lock(refs_mutex_);
  auto it = refs_.find(row);
  return it == refs_.end() ? std::string() : it->second.id;
}

json::object FingerprintService::MatchJson(const MatchResult& result, const std::string& uploader_did) const {
  std::map<ReferenceIndex::RefId, RefInfo> info;
  {
    std::lock_guard lock(refs_mutex_);
    for (const auto& m : result.matches) {
      if (auto it = refs_.find(m.ref); it != refs_.end()) info[m.ref] = it->second;
    }
  }
  auto is_self = [&](const RefInfo& r) { return !uploader_did.empty() && r.owner_did == uploader_did; };
  json::array matches;
  double highest = 0;
  for (const auto& m : result.matches) {
    auto it = info.find(m.ref);
    if (it == info.end()) continue;  // removed while this match ran
    const RefInfo& r = it->second;
    json::object o{{"reference_id", r.id},
                   {"title", r.title},
                   {"artist", r.artist},
                   {"query_offset_s", Round3(m.query_offset_s)},
                   {"reference_offset_s", Round3(m.reference_offset_s)},
                   {"duration_s", Round3(m.duration_s)},
                   {"score", Round3(m.score)},
                   {"speed", m.speed}};
    if (!r.owner_did.empty()) o["owner_did"] = r.owner_did;
    if (!r.isrc.empty()) o["isrc"] = r.isrc;
    if (is_self(r)) o["self_match"] = true;
    matches.push_back(std::move(o));
    if (!is_self(r)) highest = std::max(highest, m.score);
  }
  // plyr.fm's signals over matched windows (its "segments"): the most common work's share, and
  // the works heard in 3 or more distinct windows. The uploader's own works do not count.
  std::map<ReferenceIndex::RefId, std::set<int>> windows_by_ref;
  int matched_windows = 0;
  for (const auto& w : result.windows) {
    if (!w.accepted) continue;
    auto it = info.find(w.ref);
    if (it == info.end() || is_self(it->second)) continue;
    windows_by_ref[w.ref].insert(w.window);
    ++matched_windows;
  }
  std::int64_t dominant_pct = 0;
  json::value dominant = nullptr;
  std::int64_t sustained = 0;
  std::size_t best = 0;
  for (const auto& [ref, windows] : windows_by_ref) {
    if (windows.size() > best) {
      best = windows.size();
      dominant = info[ref].artist.empty() ? info[ref].title : info[ref].artist + " - " + info[ref].title;
    }
    if (windows.size() >= 3) ++sustained;
  }
  if (matched_windows > 0) dominant_pct = static_cast<std::int64_t>(best) * 100 / matched_windows;
  const bool flagged =
      matched_windows > 0 && (dominant_pct >= settings_.flag_dominant_pct || sustained >= settings_.flag_sustained_songs);
  return json::object{{"matches", std::move(matches)},
                      {"dominant_match_pct", dominant_pct},
                      {"dominant_match", dominant},
                      {"sustained_song_count", sustained},
                      {"is_flagged", flagged},
                      {"highest_score", Round3(highest)},
                      {"windows", json::object{{"total", result.window_count},
                                               {"matched", matched_windows},
                                               {"guarded", result.guarded_windows}}}};
}

asio::awaitable<Response> FingerprintService::Match(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  std::string uploader;
  if (auto v = request.Query("owner_did")) uploader = *v;
  json::object body;
  auto read = co_await ReadPrints(request, speeds_, &body);
  if (auto* refused = std::get_if<Response>(&read)) co_return std::move(*refused);
  Prints& p = std::get<Prints>(read);
  if (uploader.empty()) TextMember(body, "owner_did", uploader);
  if (static_cast<int>(p.items[0].size()) < match_options_.min_window_items) {
    co_return Refuse(http::status::unprocessable_entity, "AudioTooShort",
                     "the audio is too short to match: at least about 8 s is needed");
  }
  MatchOptions options = match_options_;
  if (const auto explain = request.Query("explain"); explain && (*explain == "1" || *explain == "true")) {
    options.keep_rejected = true;
  }
  std::function<MatchResult()> match = [this, prints = std::move(p), options] {
    std::vector<QueryVariant> variants;
    for (std::size_t i = 0; i < prints.items.size(); ++i) variants.push_back({prints.speeds[i], prints.items[i]});
    return FindMatches(*index_, variants, options);
  };
  MatchResult result = co_await RunBlocking(*worker_pool_, std::move(match));
  json::object out = MatchJson(result, uploader);
  if (options.keep_rejected) {
    // Near misses for calibration and review: the best candidate of every window.
    json::array windows;
    for (const auto& w : result.windows) {
      const std::string id = RefIdFor(w.ref);
      if (id.empty()) continue;
      windows.push_back(json::object{{"window", w.window},
                                     {"query_offset_s", Round3(w.query_s)},
                                     {"reference_id", id},
                                     {"reference_offset_s", Round3(w.ref_s)},
                                     {"ber", Round3(w.ber)},
                                     {"background_ber", Round3(w.background_ber)},
                                     {"activity", Round3(std::min(w.query_activity, w.ref_activity))},
                                     {"speed", w.speed},
                                     {"accepted", w.accepted}});
    }
    out["candidates"] = std::move(windows);
  }
  const char* outcome = out["is_flagged"].as_bool() ? "flagged" : out["matches"].as_array().empty() ? "clear" : "matched";
  matches_->Add({{"outcome", outcome}}).Increment();
  co_return JsonResponse(http::status::ok, out);
}

asio::awaitable<Response> FingerprintService::IndexStats(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const auto stats = index_->stats();
  co_return JsonResponse(http::status::ok,
                         json::object{{"references", stats.references},
                                      {"items", stats.items},
                                      {"hours", Round3(static_cast<double>(stats.items) * media::kItemSeconds / 3600)},
                                      {"memory_bytes", stats.memory_bytes},
                                      {"key_bits", index_->key_bits()}});
}

}  // namespace plyr::fingerprint
