#include "streamer/streamer_service.h"

#include "common/did.h"
#include "common/run_blocking.h"
#include "common/upload.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <ctime>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>
#include <prometheus/counter.h>
#include <spdlog/spdlog.h>

namespace plyr::streamer {

namespace {

constexpr std::string_view kTicketCookie = "plyr_ticket";
constexpr std::size_t kJsonBodyLimit = 64 * 1024;

std::string HttpDateOf(std::int64_t seconds) {
  // Most requests of a thread ask for the same few files: remember the last one formatted.
  thread_local std::int64_t last_seconds = -1;
  thread_local std::string last_text;
  if (seconds == last_seconds) return last_text;
  last_seconds = seconds;
  last_text = FormatHttpDate(seconds);
  return last_text;
}

// True if an If-None-Match list names `etag` (weak comparison, RFC 9110 section 13.1.2).
bool IfNoneMatchHits(std::string_view header, std::string_view etag) {
  if (header.find('*') != std::string_view::npos) return true;
  while (!header.empty()) {
    auto comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == etag) return true;
  }
  return false;
}

// If-Range (RFC 9110 section 13.1.5): a strong ETag match, or an exact Last-Modified date.
bool IfRangeHolds(std::string_view header, std::string_view etag, std::string_view last_modified) {
  if (header.empty()) return true;
  if (header.starts_with("W/")) return false;
  if (header.starts_with("\"")) return header == etag;
  return header == last_modified;
}

bool IsPlausibleContentType(std::string_view type) {
  if (type.empty() || type.size() > 127) return false;
  auto slash = type.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == type.size()) return false;
  for (char c : type) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
  }
  return true;
}

bool IsValidRenditionName(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  }
  return true;
}

json::object TrackJson(const Track& track, std::uint64_t size) {
  json::object renditions;
  for (const auto& [name, r] : track.renditions) {
    renditions[name] = json::object{{"file_id", r.file_id}, {"content_type", r.content_type}};
  }
  return json::object{{"file_id", track.file_id},
                      {"owner_did", track.owner_did},
                      {"gate", GateName(track.gate)},
                      {"content_type", track.content_type},
                      {"size", size},
                      {"renditions", std::move(renditions)}};
}

Response InvalidFileId() {
  return ErrorResponse(http::status::bad_request, "InvalidFileId", "a file id is 16 lowercase hex characters");
}

// The answer when the object store fails a read: the catalog named the file, so a missing
// object is a store out of step (logged); anything else is the store being unreachable.
Response ObjectStoreFailure(const Status& status, std::string_view file_id) {
  if (status.code() == StatusCode::kNotFound) {
    spdlog::warn("catalog names a file the object store does not hold file_id={} error=\"{}\"", file_id,
                 status.message());
    return ErrorResponse(http::status::not_found, "NotFound", "audio file not found");
  }
  spdlog::error("object store read failed file_id={} error=\"{}\"", file_id, status.message());
  Response r = ErrorResponse(http::status::service_unavailable, "StorageUnavailable",
                             "the audio store cannot be reached; try again shortly");
  r.header.set(http::field::retry_after, "5");
  r.header.set(http::field::cache_control, "no-store");
  return r;
}

// The answer when a write to the object store fails: 503 when retrying may help.
Response ObjectStoreWriteFailure(const Status& status, std::string_view what) {
  if (status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded) {
    Response r = ErrorResponse(http::status::service_unavailable, "StorageUnavailable",
                               std::string(what) + ": the object store cannot be reached; try again shortly");
    r.header.set(http::field::retry_after, "5");
    return r;
  }
  return ErrorResponse(http::status::internal_server_error, "StorageError",
                       std::string(what) + ": the object store refused the request");
}

// A range of an object, read from the store as the client takes it.
struct ProxiedRange {
  S3Client& store;
  std::string key;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::unique_ptr<HttpResponseStream> stream;  // opened now, or on the first read
};

asio::awaitable<StatusOr<std::size_t>> ReadProxied(std::shared_ptr<ProxiedRange> range, std::span<char> into) {
  if (!range->stream) {
    const auto executor = co_await asio::this_coro::executor;
    auto opened = co_await range->store.OpenRange(executor, range->key, range->offset, range->length);
    if (!opened.ok()) co_return opened.status();
    range->stream = std::move(*opened);
  }
  co_return co_await range->stream->Read(into);
}

StreamSlice ProxiedSlice(std::shared_ptr<ProxiedRange> range) {
  const std::uint64_t length = range->length;
  return StreamSlice{length, [range = std::move(range)](std::span<char> into) { return ReadProxied(range, into); }};
}

std::string MultipartBoundary() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("plyr{:016x}", rng());
}

}  // namespace

void AddStreamerSettings(CLI::App& command, const SettingsFile& file, StreamerSettings& s) {
  file.Bind(command, "streamer.listen", s.listen, "Streamer listen address (host:port)");
  file.Bind(command, "supporter.url", s.supporter_url,
            "atprotofans base URL for validateSupporter (https; http only on loopback)");
  file.Bind(command, "supporter.timeout_ms", s.supporter_timeout_ms, "validateSupporter timeout");
  file.Bind(command, "supporter.cache_seconds", s.supporter_cache_seconds,
            "How long a supporter answer is cached");
  file.Bind(command, "ticket.public_key", s.ticket_public_key,
            "Ed25519 public keys (hex, comma-separated: the current one, then those being retired) that sign "
            "stream tickets; default: the key pair in the data folder");
  file.Bind(command, "ticket.max_ttl_seconds", s.ticket_max_ttl_seconds,
            "Refuse tickets that expire further in the future than this");
  file.Bind(command, "streamer.upload_max_bytes", s.upload_max_bytes, "Largest file PUT /v1/files accepts");
  file.Bind(command, "streamer.file_send_mode", s.file_send_mode,
            "How file bytes reach the socket: read (io_uring read + send) or sendfile")
      ->check(CLI::IsMember({"read", "sendfile"}));
  file.Bind(command, "streamer.max_ranges", s.max_ranges, "Most ranges one request may ask for");
  file.Bind(command, "streamer.public_cache_control", s.public_cache_control,
            "Cache-Control of public audio (gated audio is always private)")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            if (value.empty() || value.size() > 256) return "must be 1-256 characters";
            for (char c : value) {
              if (c < 0x20 || c > 0x7e) return "must be printable ASCII (a header value)";
            }
            return {};
          },
          ""));
  file.Bind(command, "streamer.public_redirect", s.public_redirect,
            "With storage.s3: answer public audio with a redirect to the store: presigned, or a CDN's base URL "
            "(empty: proxy everything)")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            if (value.empty() || value == "presigned") return {};
            if ((value.starts_with("https://") || value.starts_with("http://")) && value.size() <= 512 &&
                std::none_of(value.begin(), value.end(), [](char c) { return c <= 0x20 || c > 0x7e; })) {
              return {};
            }
            return "must be empty, presigned, or an http(s) base URL";
          },
          ""));
  file.Bind(command, "streamer.cache_bytes", s.cache_bytes,
            "With storage.s3: bytes of local copies of the most served files (0: every read from the store)");
  file.Bind(command, "streamer.presigned_ttl_seconds", s.presigned_ttl_seconds,
            "How long a presigned redirect stays valid (60-604800)")
      ->check(CLI::Range(std::int64_t{60}, std::int64_t{604800}));
}

StreamerService::StreamerService(ServiceEnv& env, const StreamerSettings& settings)
    : env_(env), settings_(settings) {
  range_limits_.max_ranges = static_cast<std::size_t>(settings.max_ranges);
}

StreamerService::~StreamerService() = default;

StatusOr<std::unique_ptr<StreamerService>> StreamerService::Create(ServiceEnv& env, const StreamerSettings& settings) {
  std::unique_ptr<StreamerService> service(new StreamerService(env, settings));
  service->blocking_pool_ = std::make_unique<asio::thread_pool>(2);
  const auto dir = env.data_dir / "streamer";

  auto blobs = BlobStore::Open(dir / "blobs");
  if (!blobs.ok()) return Status(blobs.status().code(), "cannot open the blob store: " + blobs.status().message());
  service->blobs_ = std::move(*blobs);
  if (env.object_store) {
    auto objects = S3Client::Create(env.http_client, *env.object_store);
    if (!objects.ok()) return Status(StatusCode::kInvalidArgument, "storage.s3: " + objects.status().message());
    service->objects_ = std::move(*objects);
    service->object_prefix_ = env.object_prefix + "streamer/";
    if (settings.cache_bytes > 0) {
      service->cache_ = std::make_unique<HotBlobCache>(*service->blobs_, settings.cache_bytes);
      service->DropCopies(service->cache_->Load());
    }
  } else if (!settings.public_redirect.empty()) {
    return Status(StatusCode::kInvalidArgument, "streamer.public_redirect needs an object store (storage.s3.endpoint)");
  }

  auto store = OpenCatalogStore(env, dir);
  if (!store.ok()) return store.status();
  auto catalog = Catalog::Open(std::move(*store));
  if (!catalog.ok()) return catalog.status();
  service->catalog_ = std::move(*catalog);
  if (!env.database_url.empty()) {
    // Instances sharing the database hear of each other's writes; after a lost connection the
    // mirror is read again whole.
    Catalog* mirror = service->catalog_.get();
    StreamerService* self = service.get();
    auto listener = PgListener::Start(env.database_url, std::string(kCatalogChannel),
                                      [mirror, self](bool resync, const std::string& payload) {
                                        const Status applied = resync ? mirror->Reload() : mirror->ApplyChange(payload);
                                        // A file removed through another instance: no copy stays here.
                                        if (self->cache_ && payload.starts_with("file ")) {
                                          const std::string id = payload.substr(5);
                                          if (applied.ok() && !mirror->FindFile(id)) {
                                            self->cache_->Forget(id);
                                            self->DropCopies({id});
                                          }
                                        }
                                        if (!applied.ok()) {
                                          spdlog::error("streamer: catalog change not applied payload=\"{}\" error=\"{}\"",
                                                        payload, applied.message());
                                        }
                                      });
    if (!listener.ok()) return listener.status();
    service->listener_ = std::move(*listener);
  }

  std::vector<Ed25519PublicKey> public_keys;
  if (!settings.ticket_public_key.empty()) {
    auto parsed = ParsePublicKeyList(settings.ticket_public_key);
    if (!parsed.ok()) {
      return Status(StatusCode::kInvalidArgument,
                    "ticket.public_key is not a list of Ed25519 public keys of 64 hex characters each: " +
                        parsed.status().message());
    }
    public_keys = std::move(*parsed);
  } else {
    auto keys = LoadOrCreateTicketKeys(env.data_dir);
    if (!keys.ok()) {
      return Status(keys.status().code(), "cannot load the ticket key pair: " + keys.status().message());
    }
    public_keys.push_back(keys->public_key);
  }
  service->tickets_ = std::make_unique<TicketVerifier>(std::move(public_keys), settings.ticket_max_ttl_seconds);

  auto& registry = env.metrics.registry();
  auto& tickets = prometheus::BuildCounter()
                      .Name("plyr_streamer_ticket_verifications_total")
                      .Help("Stream tickets verified, by outcome (ok, or why refused)")
                      .Register(registry);
  for (const char* outcome : {"ok", "malformed", "bad_signature", "expired", "too_long_lived", "wrong_file"}) {
    service->ticket_outcomes_[outcome] = &tickets.Add({{"service", "streamer"}, {"outcome", outcome}});
  }
  auto& gates = prometheus::BuildCounter()
                    .Name("plyr_streamer_gate_decisions_total")
                    .Help("Plays of gated tracks, by gate and decision")
                    .Register(registry);
  for (Gate gate : {Gate::kSupporters, Gate::kCopyright}) {
    for (const char* decision :
         {"allowed", "no_ticket", "bad_ticket", "not_supporter", "supporter_check_unavailable"}) {
      service->gate_decisions_[{std::string(GateName(gate)), decision}] =
          &gates.Add({{"service", "streamer"}, {"gate", std::string(GateName(gate))}, {"decision", decision}});
    }
  }
  auto& cache_reads = prometheus::BuildCounter()
                         .Name("plyr_streamer_cache_reads_total")
                         .Help("Audio reads on an object store, by where the bytes came from (cache or store)")
                         .Register(registry);
  service->cache_hits_ = &cache_reads.Add({{"service", "streamer"}, {"source", "cache"}});
  service->cache_misses_ = &cache_reads.Add({{"service", "streamer"}, {"source", "store"}});
  auto& supporter_lookups = prometheus::BuildCounter()
                                .Name("plyr_streamer_supporter_lookups_total")
                                .Help("Supporter checks, by where the answer came from (cache or upstream)")
                                .Register(registry);

  SupporterClientOptions supporter_options;
  supporter_options.base_url = settings.supporter_url;
  supporter_options.timeout = std::chrono::milliseconds(settings.supporter_timeout_ms);
  supporter_options.cache_ttl = std::chrono::seconds(settings.supporter_cache_seconds);
  supporter_options.cache_hits = &supporter_lookups.Add({{"service", "streamer"}, {"source", "cache"}});
  supporter_options.upstream_lookups = &supporter_lookups.Add({{"service", "streamer"}, {"source", "upstream"}});
  auto supporters = SupporterClient::Create(env.http_client, supporter_options);
  if (!supporters.ok()) return supporters.status();
  service->supporters_ = std::move(*supporters);

  HttpServerOptions options = env.server_defaults;
  options.service = "streamer";
  options.file_send_mode = settings.file_send_mode == "sendfile" ? FileSendMode::kSendfile : FileSendMode::kRead;
  auto server = ListenForService(env, settings.listen, service->BuildRouter(), options);
  if (!server.ok()) return server.status();
  service->server_ = std::move(*server);
  return service;
}

StatusOr<std::unique_ptr<CatalogStore>> StreamerService::OpenCatalogStore(const ServiceEnv& env,
                                                                         const std::filesystem::path& dir) {
  if (env.database_url.empty()) {
    auto db = SqliteDb::Open(dir / "catalog.db");
    if (!db.ok()) return db.status();
    return OpenSqliteCatalogStore(std::move(*db));
  }
  auto db = PgDb::Open(env.database_url, env.database_connections);
  if (!db.ok()) return Status(db.status().code(), "the catalog database: " + db.status().message());
  return OpenPgCatalogStore(std::shared_ptr<PgDb>(std::move(*db)));
}

Router StreamerService::BuildRouter() {
  Router router;
  router.Add(http::verb::get, "/audio/{file_id}", this, &StreamerService::ServeAudio);
  router.Add(http::verb::put, "/v1/files", this, &StreamerService::UploadFile);
  router.Add(http::verb::get, "/v1/files/{file_id}", this, &StreamerService::GetFile);
  router.Add(http::verb::put, "/v1/tracks/{file_id}", this, &StreamerService::PutTrack);
  router.Add(http::verb::get, "/v1/tracks/{file_id}", this, &StreamerService::GetTrack);
  router.Add(http::verb::delete_, "/v1/tracks/{file_id}", this, &StreamerService::DeleteTrack);
  router.Add(http::verb::get, "/v1/files", this, &StreamerService::ListFiles);
  router.Add(http::verb::delete_, "/v1/files/{file_id}", this, &StreamerService::DeleteFile);
  router.Add(http::verb::post, "/v1/gc", this, &StreamerService::CollectGarbage);
  return router;
}

// ---------------------------------------------------------------------------------------------
// Streaming

asio::awaitable<std::optional<Response>> StreamerService::CheckGate(Request& request, const Track& track) {
  std::string decision;
  auto denied = co_await DecideGate(request, track, &decision);
  gate_decisions_.at({std::string(GateName(track.gate)), decision})->Increment();
  co_return denied;
}

asio::awaitable<std::optional<Response>> StreamerService::DecideGate(Request& request, const Track& track,
                                                                   std::string* decision) {
  std::optional<std::string> ticket;
  if (auto bearer = request.BearerToken()) {
    ticket = std::string(*bearer);
  } else if (auto cookie = request.Cookie(kTicketCookie)) {
    ticket = std::string(*cookie);
  } else {
    ticket = request.Query("ticket");
  }
  auto unauthorized = [](std::string_view error, std::string message) {
    Response r = ErrorResponse(http::status::unauthorized, error, message);
    r.header.set(http::field::www_authenticate, "Bearer");
    r.header.set(http::field::cache_control, "no-store");
    return r;
  };
  if (!ticket || ticket->empty()) {
    *decision = "no_ticket";
    co_return unauthorized("AuthenticationRequired", "a stream ticket is required to play this track");
  }
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  auto outcome = tickets_->Verify(*ticket, track.file_id, now);
  ticket_outcomes_.at(outcome.ok ? "ok" : std::string(TicketErrorName(outcome.error)))->Increment();
  if (!outcome.ok) {
    *decision = "bad_ticket";
    co_return unauthorized("InvalidTicket", fmt::format("stream ticket refused: {}", TicketErrorName(outcome.error)));
  }
  if (track.gate == Gate::kCopyright || outcome.claims.viewer_did == track.owner_did) {
    *decision = "allowed";
    co_return std::nullopt;
  }

  switch (co_await supporters_->Check(outcome.claims.viewer_did, track.owner_did)) {
    case SupportStatus::kSupporter:
      *decision = "allowed";
      co_return std::nullopt;
    case SupportStatus::kNotSupporter: {
      *decision = "not_supporter";
      Response r = ErrorResponse(http::status::payment_required, "SupportRequired",
                                 "this track requires supporter access");
      r.header.set("X-Support-Required", "true");
      r.header.set(http::field::cache_control, "no-store");
      co_return r;
    }
    case SupportStatus::kUnavailable:
      break;
  }
  *decision = "supporter_check_unavailable";
  Response r = ErrorResponse(http::status::service_unavailable, "SupporterCheckUnavailable",
                             "the supporter check could not be made; try again shortly");
  r.header.set(http::field::retry_after, "5");
  r.header.set(http::field::cache_control, "no-store");
  co_return r;
}

asio::awaitable<Response> StreamerService::ServeAudio(Request& request) {
  const std::string& requested = *request.Param("file_id");
  if (!BlobStore::IsValidId(requested)) {
    co_return InvalidFileId();
  }
  auto track = catalog_->FindByAnyFileId(requested);
  if (!track) co_return ErrorResponse(http::status::not_found, "NotFound", "audio file not found");

  std::string serve_id = requested;
  std::string content_type = track->content_type;
  for (const auto& [name, r] : track->renditions) {
    if (r.file_id == requested) content_type = r.content_type;
  }
  if (auto rendition = request.Query("rendition")) {
    auto it = track->renditions.find(*rendition);
    if (it == track->renditions.end()) {
      co_return ErrorResponse(http::status::not_found, "UnknownRendition",
                              "this track has no rendition named '" + std::string(rendition->substr(0, 32)) + "'");
    }
    serve_id = it->second.file_id;
    content_type = it->second.content_type;
  }

  if (track->gate != Gate::kNone) {
    if (auto denied = co_await CheckGate(request, *track)) co_return std::move(*denied);
  }

  if (objects_ && track->gate == Gate::kNone && !settings_.public_redirect.empty()) {
    co_return RedirectToObject(serve_id);
  }
  std::uint64_t size = 0;
  std::string last_modified;  // from a local file; objects are named by their ETag alone
  std::shared_ptr<const UniqueFd> file;
  std::shared_ptr<const BlobStore::OpenBlob> copy = cache_ ? cache_->Find(serve_id) : nullptr;
  if (copy) {
    cache_hits_->Increment();
    size = copy->size;
    file = std::shared_ptr<const UniqueFd>(copy, &copy->fd);
  } else if (objects_) {
    auto known = co_await ObjectSize(serve_id);
    if (!known.ok()) co_return ObjectStoreFailure(known.status(), serve_id);
    size = *known;
    if (cache_) {
      cache_misses_->Increment();
      MaybeCache(serve_id, size);
    }
  } else {
    auto blob = blobs_->OpenShared(serve_id);
    if (!blob) {
      spdlog::warn("catalog names a file the store does not hold file_id={} error=\"{}\"", serve_id,
                   blob.status().message());
      co_return ErrorResponse(http::status::not_found, "NotFound", "audio file not found");
    }
    size = (*blob)->size;
    last_modified = HttpDateOf((*blob)->mtime_seconds);
    file = std::shared_ptr<const UniqueFd>(*blob, &(*blob)->fd);
  }
  const std::string etag = "\"" + serve_id + "\"";

  Response response;
  auto& h = response.header;
  h.set(http::field::accept_ranges, "bytes");
  h.set(http::field::etag, etag);
  if (!last_modified.empty()) h.set(http::field::last_modified, last_modified);
  // Content-addressed bytes never change: public ones may be cached as long as the operator
  // allows (a year by default); gated ones only by the viewer's own browser.
  h.set(http::field::cache_control,
        track->gate == Gate::kNone ? settings_.public_cache_control : std::string("private, max-age=3600"));

  if (IfNoneMatchHits(request.Field(http::field::if_none_match), etag)) {
    h.result(http::status::not_modified);
    co_return response;
  }
  h.set(http::field::content_type, content_type);

  if (request.method() == http::verb::head) {
    // Range is defined for GET only (RFC 9110 section 14.2): HEAD answers as a full GET would.
    h.result(http::status::ok);
    response.omit_body = true;
    response.omitted_length = size;
    co_return response;
  }

  const std::string_view range_header = request.Field(http::field::range);
  RangeDecision decision;
  if (!range_header.empty() && IfRangeHolds(request.Field(http::field::if_range), etag, last_modified)) {
    decision = ResolveRange(range_header, size, range_limits_);
  }
  switch (decision.outcome) {
    case RangeOutcome::kIgnore:
      h.result(http::status::ok);
      if (file) {
        response.segments.emplace_back(FileSlice{file, 0, size});
      } else if (size > 0) {
        auto slice = co_await OpenObjectSlice(serve_id, 0, size);
        if (!slice.ok()) co_return ObjectStoreFailure(slice.status(), serve_id);
        response.segments.emplace_back(std::move(*slice));
      }
      break;
    case RangeOutcome::kUnsatisfiable: {
      Response r = ErrorResponse(http::status::range_not_satisfiable, "RangeNotSatisfiable",
                                 fmt::format("the requested range lies outside the {} bytes of this file", size));
      r.header.set(http::field::content_range, fmt::format("bytes */{}", size));
      r.header.set(http::field::accept_ranges, "bytes");
      co_return r;
    }
    case RangeOutcome::kPartial:
      h.result(http::status::partial_content);
      if (decision.ranges.size() == 1) {
        const auto& r = decision.ranges.front();
        h.set(http::field::content_range, fmt::format("bytes {}-{}/{}", r.first, r.last(), size));
        if (file) {
          response.segments.emplace_back(FileSlice{file, r.first, r.length});
        } else {
          auto slice = co_await OpenObjectSlice(serve_id, r.first, r.length);
          if (!slice.ok()) co_return ObjectStoreFailure(slice.status(), serve_id);
          response.segments.emplace_back(std::move(*slice));
        }
      } else {
        // Several ranges: multipart/byteranges (RFC 9110 section 14.6), parts in ascending order.
        const std::string boundary = MultipartBoundary();
        h.set(http::field::content_type, "multipart/byteranges; boundary=" + boundary);
        for (const auto& r : decision.ranges) {
          response.segments.emplace_back(fmt::format("\r\n--{}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                                                     boundary, content_type, r.first, r.last(), size));
          if (file) {
            response.segments.emplace_back(FileSlice{file, r.first, r.length});
          } else {
            response.segments.emplace_back(LazyObjectSlice(serve_id, r.first, r.length));
          }
        }
        response.segments.emplace_back(fmt::format("\r\n--{}--\r\n", boundary));
      }
      break;
  }
  co_return response;
}

// ---------------------------------------------------------------------------------------------
// The object store

asio::awaitable<StatusOr<std::uint64_t>> StreamerService::ObjectSize(const std::string& file_id) {
  if (auto record = catalog_->FindFile(file_id)) co_return record->size;
  // A file recorded before the catalog kept sizes: the store knows.
  const auto executor = co_await asio::this_coro::executor;
  const std::string key = ObjectKey(file_id);
  auto head = co_await objects_->Head(executor, key);
  if (!head.ok()) co_return head.status();
  co_return head->size;
}

asio::awaitable<StatusOr<StreamSlice>> StreamerService::OpenObjectSlice(const std::string& file_id,
                                                                        std::uint64_t offset, std::uint64_t length) {
  const auto executor = co_await asio::this_coro::executor;
  const std::string key = ObjectKey(file_id);
  auto opened = co_await objects_->OpenRange(executor, key, offset, length);
  if (!opened.ok()) co_return opened.status();
  co_return ProxiedSlice(std::make_shared<ProxiedRange>(ProxiedRange{*objects_, ObjectKey(file_id), offset, length,
                                                                     std::move(*opened)}));
}

StreamSlice StreamerService::LazyObjectSlice(const std::string& file_id, std::uint64_t offset, std::uint64_t length) {
  return ProxiedSlice(std::make_shared<ProxiedRange>(ProxiedRange{*objects_, ObjectKey(file_id), offset, length, nullptr}));
}

asio::awaitable<Status> StreamerService::PutObject(const std::string& file_id, std::uint64_t size,
                                                   const std::string& content_type) {
  const auto executor = co_await asio::this_coro::executor;
  const std::filesystem::path path = blobs_->PathFor(file_id);
  const std::string key = ObjectKey(file_id);
  co_return co_await objects_->PutFileOfSize(executor, key, path, size, content_type);
}

asio::awaitable<Status> StreamerService::RemoveObject(const std::string& file_id) {
  const auto executor = co_await asio::this_coro::executor;
  const std::string key = ObjectKey(file_id);
  co_return co_await objects_->Delete(executor, key);
}

Response StreamerService::RedirectToObject(const std::string& file_id) const {
  Response r;
  r.header.result(http::status::found);
  if (settings_.public_redirect == "presigned") {
    const int ttl = static_cast<int>(settings_.presigned_ttl_seconds);
    r.header.set(http::field::location,
                 objects_->PresignedGetUrl(ObjectKey(file_id), ttl, static_cast<std::int64_t>(std::time(nullptr))));
    // The redirect may be reused while its URL is still good, by this viewer only.
    r.header.set(http::field::cache_control, fmt::format("private, max-age={}", ttl / 2));
  } else {
    const std::string& base = settings_.public_redirect;
    r.header.set(http::field::location, base + (base.ends_with('/') ? "" : "/") + ObjectKey(file_id));
    r.header.set(http::field::cache_control, settings_.public_cache_control);
  }
  return r;
}

void StreamerService::MaybeCache(const std::string& file_id, std::uint64_t size) {
  if (!cache_->BeginFill(file_id, size)) return;
  asio::co_spawn(env_.runtime.main_context(), FillCache(file_id, size), asio::detached);
}

asio::awaitable<void> StreamerService::FillCache(std::string file_id, std::uint64_t size) {
  // The copy is written like an upload (hashed on the way, fsynced, renamed into place), so it is
  // whole or absent, and its name proves its bytes.
  const auto executor = co_await asio::this_coro::executor;
  bool stored = false;
  auto writer = blobs_->Begin(executor);
  const std::string key = ObjectKey(file_id);
  StatusOr<std::unique_ptr<HttpResponseStream>> stream = Status(StatusCode::kInternal, "no copy file");
  if (writer.ok()) stream = co_await objects_->OpenRange(executor, key, 0, size);
  if (stream.ok()) {
    std::vector<char> chunk(256 * 1024);
    std::uint64_t copied = 0;
    Status failed = OkStatus();
    while (failed.ok() && copied < size) {
      auto got = co_await (*stream)->Read(chunk);
      if (!got.ok()) {
        failed = got.status();
      } else if (*got == 0) {
        failed = Status(StatusCode::kDataLoss, "the store's answer ended early");
      } else {
        const std::span<const char> piece(chunk.data(), *got);
        failed = co_await (*writer)->Write(piece);
        copied += *got;
      }
    }
    if (failed.ok()) {
      std::function<StatusOr<BlobInfo>()> commit = [w = writer->get()] { return w->Commit(); };
      auto committed = co_await RunBlocking(*blocking_pool_, std::move(commit));
      if (committed.ok() && committed->file_id != file_id) {
        spdlog::error("streamer: the store's bytes for file_id={} hash to {}: not cached", file_id, committed->file_id);
        std::function<Status()> drop = [this, id = committed->file_id] { return blobs_->Remove(id); };
        co_await RunBlocking(*blocking_pool_, std::move(drop));
      } else {
        stored = committed.ok();
      }
    }
  }
  std::vector<std::string> evicted = cache_->EndFill(file_id, size, stored);
  if (!evicted.empty()) {
    std::function<bool()> drop = [this, evicted] {
      DropCopies(evicted);
      return true;
    };
    co_await RunBlocking(*blocking_pool_, std::move(drop));
  }
}

void StreamerService::DropCopies(const std::vector<std::string>& file_ids) {
  for (const auto& id : file_ids) {
    if (Status removed = blobs_->Remove(id); !removed.ok() && removed.code() != StatusCode::kNotFound) {
      spdlog::warn("streamer: a cached copy stays file_id={} error=\"{}\"", id, removed.message());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Admin API

asio::awaitable<Response> StreamerService::UploadFile(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::uint64_t limit = settings_.upload_max_bytes;
  std::string content_type(request.Field(http::field::content_type));
  if (!IsPlausibleContentType(content_type)) content_type = "application/octet-stream";

  auto received = co_await ReceiveUpload(request, *blobs_, limit, "upload");
  if (auto* refused = std::get_if<Response>(&received)) co_return std::move(*refused);
  // The commit (fsync, rename, directory fsync) and the catalog's commit wait for the disk.
  struct Stored {
    std::string error;  // empty on success
    StatusCode code = StatusCode::kOk;
    FileRecord file;
    bool existed = false;
  };
  std::function<Stored()> store =
      [this, writer = std::shared_ptr<BlobStore::Writer>(std::move(std::get<std::unique_ptr<BlobStore::Writer>>(received))),
       content_type] {
        Stored out;
        auto info = writer->Commit();
        if (!info.ok()) {
          out.error = "commit failed: " + info.status().message();
          out.code = info.status().code();
          return out;
        }
        auto existing = catalog_->FindFile(info->file_id);
        out.existed = existing.has_value();
        out.file = existing ? *existing : FileRecord{info->file_id, info->size, content_type};
        // With an object store the record waits for the object (below).
        if (!out.existed && !objects_) {
          if (Status put = catalog_->PutFile(out.file); !put.ok()) {
            out.error = "catalog write failed: " + put.message();
            out.code = put.code();
          }
        }
        return out;
      };
  Stored stored = co_await RunBlocking(*blocking_pool_, std::move(store));
  if (!stored.error.empty()) {
    spdlog::error("upload: {}", stored.error);
    co_return StorageErrorResponse(stored.code, "cannot store the upload");
  }
  if (objects_) {
    // The store holds the bytes before the catalog names them, so a recorded file is always
    // there to serve; the local copy was only the way in.
    Status put = OkStatus();
    if (!stored.existed) put = co_await PutObject(stored.file.file_id, stored.file.size, content_type);
    std::function<Status()> record = [this, file = stored.file, existed = stored.existed, uploaded = put.ok()] {
      Status removed = blobs_->Remove(file.file_id);
      if (!removed.ok() && removed.code() != StatusCode::kNotFound) {
        spdlog::warn("upload: the local copy stays file_id={} error=\"{}\"", file.file_id, removed.message());
      }
      return existed || !uploaded ? OkStatus() : catalog_->PutFile(file);
    };
    Status recorded = co_await RunBlocking(*blocking_pool_, std::move(record));
    if (!put.ok()) {
      spdlog::error("upload: object store write failed file_id={} error=\"{}\"", stored.file.file_id, put.message());
      co_return ObjectStoreWriteFailure(put, "cannot store the upload");
    }
    if (!recorded.ok()) {
      spdlog::error("upload: catalog write failed: {}", recorded.message());
      co_return StorageErrorResponse(recorded.code(), "cannot store the upload");
    }
  }
  co_return JsonResponse(stored.existed ? http::status::ok : http::status::created,
                         json::object{{"file_id", stored.file.file_id},
                                      {"size", stored.file.size},
                                      {"content_type", stored.file.content_type}});
}

// For other services (the transcoder fetching an upload to transcode): the bytes as stored,
// with no gate, since the admin token is the authority.
asio::awaitable<Response> StreamerService::GetFile(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string& file_id = *request.Param("file_id");
  if (!BlobStore::IsValidId(file_id)) co_return InvalidFileId();
  auto record = catalog_->FindFile(file_id);
  if (objects_) {
    if (!record) co_return ErrorResponse(http::status::not_found, "NotFound", "no file with this id is stored");
    Response response;
    response.header.result(http::status::ok);
    response.header.set(http::field::content_type, record->content_type);
    response.header.set(http::field::cache_control, "no-store");
    if (request.method() == http::verb::head) {
      response.omit_body = true;
      response.omitted_length = record->size;
      co_return response;
    }
    if (record->size > 0) {
      auto slice = co_await OpenObjectSlice(file_id, 0, record->size);
      if (!slice.ok()) co_return ObjectStoreFailure(slice.status(), file_id);
      response.segments.emplace_back(std::move(*slice));
    }
    co_return response;
  }
  auto blob = blobs_->OpenShared(file_id);
  if (!blob) co_return ErrorResponse(http::status::not_found, "NotFound", "no file with this id is stored");
  Response response;
  response.header.result(http::status::ok);
  response.header.set(http::field::content_type, record ? record->content_type : "application/octet-stream");
  response.header.set(http::field::cache_control, "no-store");
  if (request.method() == http::verb::head) {
    response.omit_body = true;
    response.omitted_length = (*blob)->size;
    co_return response;
  }
  std::shared_ptr<const UniqueFd> file(*blob, &(*blob)->fd);
  response.segments.emplace_back(FileSlice{file, 0, (*blob)->size});
  co_return response;
}

asio::awaitable<Response> StreamerService::PutTrack(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string& file_id = *request.Param("file_id");
  if (!BlobStore::IsValidId(file_id)) {
    co_return InvalidFileId();
  }
  auto body = co_await request.ReadAll(kJsonBodyLimit);
  if (auto* e = std::get_if<BodyError>(&body)) co_return ErrorResponseFor(*e, kJsonBodyLimit);
  boost::system::error_code ec;
  json::value doc = json::parse(std::get<std::string>(body), ec);
  auto invalid = [](std::string message) {
    return ErrorResponse(http::status::bad_request, "InvalidRequest", message);
  };
  if (ec || !doc.is_object()) co_return invalid("the body must be a JSON object");
  const json::object& obj = doc.as_object();

  Track track;
  track.file_id = file_id;
  const json::value* owner = obj.if_contains("owner_did");
  if (!owner || !owner->is_string() || !IsPlausibleDid(owner->as_string())) {
    co_return invalid("owner_did must be a DID such as did:plc:abc123");
  }
  track.owner_did = std::string(owner->as_string());
  track.gate = Gate::kNone;
  if (const json::value* gate = obj.if_contains("gate")) {
    auto parsed = gate->is_string() ? ParseGate(gate->as_string()) : std::nullopt;
    if (!parsed) co_return invalid("gate must be one of \"none\", \"any\", \"copyright\"");
    track.gate = *parsed;
  }
  auto stored = [&](const std::string& id) -> std::optional<std::string> {
    auto record = catalog_->FindFile(id);
    // On an object store a file is recorded only once the store holds it.
    if (objects_ ? !record : !blobs_->Contains(id)) return std::nullopt;
    return record ? record->content_type : std::string("application/octet-stream");
  };
  auto stored_type = stored(file_id);
  if (!stored_type) {
    co_return ErrorResponse(http::status::conflict, "FileNotStored",
                            "no file with this id is stored; upload it with PUT /v1/files first");
  }
  track.content_type = *stored_type;
  if (const json::value* type = obj.if_contains("content_type")) {
    if (!type->is_string() || !IsPlausibleContentType(type->as_string())) {
      co_return invalid("content_type must be a media type such as audio/mpeg");
    }
    track.content_type = std::string(type->as_string());
  }
  if (const json::value* renditions = obj.if_contains("renditions")) {
    if (!renditions->is_object()) co_return invalid("renditions must be an object of name -> {file_id, content_type}");
    for (const auto& [key, value] : renditions->as_object()) {
      std::string name(key);
      if (!IsValidRenditionName(name)) co_return invalid("rendition names are 1-32 of [a-z0-9_-]");
      const json::value* rid = value.is_object() ? value.as_object().if_contains("file_id") : &value;
      if (!rid || !rid->is_string() || !BlobStore::IsValidId(rid->as_string())) {
        co_return invalid("rendition '" + name + "' needs a file_id of 16 lowercase hex characters");
      }
      Rendition r;
      r.file_id = std::string(rid->as_string());
      auto rtype = stored(r.file_id);
      if (!rtype) {
        co_return ErrorResponse(http::status::conflict, "FileNotStored",
                                "rendition '" + name + "' names a file that is not stored");
      }
      r.content_type = *rtype;
      if (value.is_object()) {
        if (const json::value* type = value.as_object().if_contains("content_type")) {
          if (!type->is_string() || !IsPlausibleContentType(type->as_string())) {
            co_return invalid("rendition '" + name + "' has an invalid content_type");
          }
          r.content_type = std::string(type->as_string());
        }
      }
      track.renditions.emplace(std::move(name), std::move(r));
    }
  }
  std::function<Status()> put_track = [this, track] { return catalog_->PutTrack(track); };
  if (Status put = co_await RunBlocking(*blocking_pool_, std::move(put_track)); !put.ok()) {
    if (put.code() == StatusCode::kFailedPrecondition) {
      co_return ErrorResponse(http::status::conflict, "FileOfAnotherTrack", put.message());
    }
    spdlog::error("catalog write failed error=\"{}\"", put.message());
    co_return StorageErrorResponse(put.code(), "cannot record the track");
  }
  auto record = catalog_->FindFile(file_id);
  co_return JsonResponse(http::status::ok, TrackJson(track, record ? record->size : 0));
}

asio::awaitable<Response> StreamerService::GetTrack(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string& file_id = *request.Param("file_id");
  if (!BlobStore::IsValidId(file_id)) {
    co_return InvalidFileId();
  }
  auto track = catalog_->FindTrack(file_id);
  if (!track) co_return ErrorResponse(http::status::not_found, "NotFound", "no track with this file id");
  auto record = catalog_->FindFile(file_id);
  co_return JsonResponse(http::status::ok, TrackJson(*track, record ? record->size : 0));
}

asio::awaitable<Response> StreamerService::DeleteTrack(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string& file_id = *request.Param("file_id");
  if (!BlobStore::IsValidId(file_id)) {
    co_return InvalidFileId();
  }
  const auto files_param = request.Query("files");
  const bool with_files = files_param == "1" || files_param == "true";
  struct Removed {
    bool ok = false;
    StatusCode code = StatusCode::kOk;  // when not ok
    bool existed = false;
    std::vector<std::string> files_removed;
    // Files the track no longer names but which could not be removed (a full disk): unreferenced
    // now, so DELETE /v1/files or the garbage collection removes them later.
    std::vector<std::pair<std::string, StatusCode>> files_not_removed;
  };
  std::function<Removed()> remove = [this, file_id, with_files] {
    Removed out;
    auto track = catalog_->FindTrack(file_id);
    const Status removed_track = catalog_->RemoveTrack(file_id, &out.existed);
    out.ok = removed_track.ok();
    out.code = removed_track.code();
    if (!out.ok || !out.existed || !with_files || !track) return out;
    // Its files, unless another track still names them (one owner's tracks may share a file).
    std::vector<std::string> files = {track->file_id};
    for (const auto& [name, r] : track->renditions) files.push_back(r.file_id);
    std::sort(files.begin(), files.end());
    files.erase(std::unique(files.begin(), files.end()), files.end());
    for (const auto& f : files) {
      if (!catalog_->TracksNaming(f).empty()) continue;
      Catalog::FileRemoval removal;
      if (Status s = RemoveFileNow(f, &removal); !s.ok()) {
        spdlog::error("streamer: removing file failed file_id={} error=\"{}\"", f, s.message());
        out.files_not_removed.emplace_back(f, s.code());
        continue;
      }
      out.files_removed.push_back(f);
    }
    return out;
  };
  Removed removed = co_await RunBlocking(*blocking_pool_, std::move(remove));
  if (!removed.ok) co_return StorageErrorResponse(removed.code, "cannot remove the track");
  if (objects_) {
    // The records are gone (every instance answers 404 now); then the objects. One the store
    // keeps is named by nothing, so DELETE /v1/files or the garbage collection takes it later.
    std::vector<std::string> gone;
    for (auto& f : removed.files_removed) {
      if (Status s = co_await RemoveObject(f); !s.ok()) {
        spdlog::error("streamer: removing object failed file_id={} error=\"{}\"", f, s.message());
        removed.files_not_removed.emplace_back(f, s.code());
        continue;
      }
      gone.push_back(std::move(f));
    }
    removed.files_removed = std::move(gone);
  }
  if (!removed.existed) co_return ErrorResponse(http::status::not_found, "NotFound", "no track with this file id");
  if (with_files) {
    json::array files;
    for (const auto& f : removed.files_removed) files.emplace_back(f);
    json::object body{{"file_id", file_id}, {"deleted", true}, {"files_removed", std::move(files)}};
    if (!removed.files_not_removed.empty()) {
      // The track is gone either way: answering an error would make a retry find nothing to delete.
      json::array left;
      for (const auto& [f, code] : removed.files_not_removed) {
        left.emplace_back(json::object{
            {"file_id", f},
            {"error", "StorageError"},
            {"message", code == StatusCode::kResourceExhausted ? "the disk is full"
                        : code == StatusCode::kUnavailable  ? "the object store cannot be reached"
                                                            : "the file could not be removed"}});
      }
      body["files_not_removed"] = std::move(left);
    }
    co_return JsonResponse(http::status::ok, body);
  }
  Response r;
  r.header.result(http::status::no_content);
  co_return r;
}

Status StreamerService::RemoveFileNow(const std::string& file_id, Catalog::FileRemoval* removal) {
  // The bytes first: a takedown must not survive a crash half-way. A record left naming bytes
  // that are gone answers 404, and the DELETE can be repeated.
  if (cache_) cache_->Forget(file_id);
  if (Status removed = blobs_->Remove(file_id); !removed.ok() && removed.code() != StatusCode::kNotFound) {
    return Status(removed.code(), "cannot remove the bytes: " + removed.message());
  }
  if (Status removed = catalog_->RemoveFile(file_id, removal); !removed.ok()) {
    return Status(removed.code(), "cannot update the catalog: " + removed.message());
  }
  spdlog::info("streamer: file removed file_id={} tracks_removed={} renditions_removed={}", file_id,
               removal->tracks_removed.size(), removal->renditions_removed.size());
  return OkStatus();
}

asio::awaitable<Response> StreamerService::DeleteFile(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  const std::string file_id = *request.Param("file_id");
  if (!BlobStore::IsValidId(file_id)) co_return InvalidFileId();
  const auto force_param = request.Query("force");
  const bool force = force_param == "1" || force_param == "true";
  struct Outcome {
    http::status status = http::status::ok;
    std::vector<std::string> naming;
    Catalog::FileRemoval removal;
    std::string error;
    StatusCode code = StatusCode::kOk;
  };
  std::function<Outcome()> check = [this, file_id, force] {
    Outcome out;
    if (!catalog_->FindFile(file_id) && !blobs_->Contains(file_id)) {
      out.status = http::status::not_found;
      return out;
    }
    out.naming = catalog_->TracksNaming(file_id);
    if (!out.naming.empty() && !force) out.status = http::status::conflict;
    return out;
  };
  Outcome out = co_await RunBlocking(*blocking_pool_, std::move(check));
  // The bytes first (a takedown must not survive a failure half-way): the object, then the
  // local copy and the records.
  if (out.status == http::status::ok && objects_) {
    if (Status removed = co_await RemoveObject(file_id); !removed.ok()) {
      spdlog::error("streamer: delete file_id={} error=\"{}\"", file_id, removed.message());
      co_return ObjectStoreWriteFailure(removed, "cannot remove the file");
    }
  }
  if (out.status == http::status::ok) {
    std::function<Outcome()> remove = [this, file_id, out] {
      Outcome done = out;
      if (Status s = RemoveFileNow(file_id, &done.removal); !s.ok()) {
        done.status = http::status::internal_server_error;
        done.code = s.code();
        done.error = std::string(s.message());
      }
      return done;
    };
    out = co_await RunBlocking(*blocking_pool_, std::move(remove));
  }
  auto strings = [](const std::vector<std::string>& items) {
    json::array a;
    for (const auto& item : items) a.emplace_back(item);
    return a;
  };
  switch (out.status) {
    case http::status::not_found:
      co_return ErrorResponse(http::status::not_found, "NotFound", "no file with this id is stored");
    case http::status::conflict:
      co_return JsonResponse(http::status::conflict,
                             json::object{{"error", "FileInUse"},
                                          {"message", "tracks still name this file; remove them, or add ?force=1 to "
                                                      "remove them (and the renditions naming it) with the file"},
                                          {"tracks", strings(out.naming)}});
    case http::status::internal_server_error:
      spdlog::error("streamer: delete file_id={} error=\"{}\"", file_id, out.error);
      co_return StorageErrorResponse(out.code, "cannot remove the file");
    default:
      co_return JsonResponse(http::status::ok, json::object{{"file_id", file_id},
                                                           {"deleted", true},
                                                           {"tracks_removed", strings(out.removal.tracks_removed)},
                                                           {"renditions_removed", strings(out.removal.renditions_removed)}});
  }
}

asio::awaitable<Response> StreamerService::ListFiles(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  std::size_t limit = 100;
  if (auto text = request.Query("limit")) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || value < 1 || value > 1000) {
      co_return ErrorResponse(http::status::bad_request, "InvalidRequest", "limit must be 1-1000");
    }
    limit = value;
  }
  const std::string after = request.Query("after").value_or("");
  if (!after.empty() && !BlobStore::IsValidId(after)) co_return InvalidFileId();
  json::array files;
  std::string last;
  const auto naming = catalog_->TracksNamingEachFile();
  for (const auto& file : catalog_->ListFiles(after, limit)) {
    json::array tracks;
    if (auto it = naming.find(file.file_id); it != naming.end()) {
      for (const auto& t : it->second) tracks.emplace_back(t);
    }
    files.push_back(json::object{{"file_id", file.file_id},
                                 {"size", file.size},
                                 {"content_type", file.content_type},
                                 {"tracks", std::move(tracks)}});
    last = file.file_id;
  }
  json::object body{{"files", std::move(files)}};
  if (body.at("files").as_array().size() == limit) body["next"] = last;
  co_return JsonResponse(http::status::ok, body);
}

asio::awaitable<Response> StreamerService::CollectGarbage(Request& request) {
  if (!HasAdminToken(request, env_.admin_token)) co_return AdminTokenRequired();
  // An upload is named by its track a moment later (PUT /v1/files, then PUT /v1/tracks): only
  // files older than this are collected.
  std::int64_t min_age_s = 3600;
  if (auto text = request.Query("min_age_s")) {
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), min_age_s);
    if (ec != std::errc() || end != text->data() + text->size() || min_age_s < 0) {
      co_return ErrorResponse(http::status::bad_request, "InvalidRequest", "min_age_s must be 0 or more");
    }
  }
  if (objects_) co_return co_await CollectObjectGarbage(min_age_s);
  struct Collected {
    std::vector<std::string> removed;
    std::size_t kept = 0;
    std::string error;
  };
  std::function<Collected()> collect = [this, min_age_s] {
    Collected out;
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    const auto naming = catalog_->TracksNamingEachFile();
    // Every blob on disk, whether or not the catalog records it (a crash can leave either).
    std::error_code ec;
    for (const auto& shard : std::filesystem::directory_iterator(blobs_->root(), ec)) {
      if (!shard.is_directory() || shard.path().filename().string().size() != 2) continue;
      for (const auto& entry : std::filesystem::directory_iterator(shard.path(), ec)) {
        const std::string id = entry.path().filename().string();
        if (!BlobStore::IsValidId(id)) continue;
        auto blob = blobs_->OpenForRead(id);
        if (!blob) continue;
        // The snapshot rules out most files; a candidate is checked again just before it goes,
        // for a track recorded since.
        if (now - blob->mtime_seconds < min_age_s || naming.contains(id) || !catalog_->TracksNaming(id).empty()) {
          ++out.kept;
          continue;
        }
        Catalog::FileRemoval removal;
        if (Status s = RemoveFileNow(id, &removal); !s.ok()) {
          out.error = std::string(s.message());
          return out;
        }
        out.removed.push_back(id);
      }
    }
    return out;
  };
  Collected out = co_await RunBlocking(*blocking_pool_, std::move(collect));
  if (!out.error.empty()) {
    spdlog::error("streamer: gc error=\"{}\"", out.error);
    co_return ErrorResponse(http::status::internal_server_error, "StorageError", "garbage collection failed");
  }
  json::array removed;
  for (const auto& id : out.removed) removed.emplace_back(id);
  co_return JsonResponse(http::status::ok, json::object{{"removed", std::move(removed)}, {"kept", out.kept}});
}

// With an object store: every object under the streamer's prefix that no track names and that is
// older than `min_age_s` goes (the store's listing, page by page), then its record.
asio::awaitable<Response> StreamerService::CollectObjectGarbage(std::int64_t min_age_s) {
  const auto executor = co_await asio::this_coro::executor;
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  json::array removed;
  std::size_t kept = 0;
  std::string token;
  do {
    auto page = co_await objects_->List(executor, object_prefix_, token);
    if (!page.ok()) {
      spdlog::error("streamer: gc listing failed error=\"{}\"", page.status().message());
      co_return ObjectStoreWriteFailure(page.status(), "garbage collection failed");
    }
    token = page->next_token;
    for (const auto& object : page->objects) {
      const std::string id = object.key.substr(object_prefix_.size());
      if (!BlobStore::IsValidId(id)) continue;  // not ours
      if (now - object.last_modified < min_age_s || !catalog_->TracksNaming(id).empty()) {
        ++kept;
        continue;
      }
      if (Status s = co_await RemoveObject(id); !s.ok()) {
        spdlog::error("streamer: gc error=\"{}\"", s.message());
        co_return ObjectStoreWriteFailure(s, "garbage collection failed");
      }
      std::function<Status()> forget = [this, id] {
        Catalog::FileRemoval removal;
        return RemoveFileNow(id, &removal);
      };
      if (Status s = co_await RunBlocking(*blocking_pool_, std::move(forget)); !s.ok()) {
        spdlog::error("streamer: gc error=\"{}\"", s.message());
        co_return ErrorResponse(http::status::internal_server_error, "StorageError", "garbage collection failed");
      }
      removed.emplace_back(id);
    }
  } while (!token.empty());
  co_return JsonResponse(http::status::ok, json::object{{"removed", std::move(removed)}, {"kept", kept}});
}

}  // namespace plyr::streamer
