#include "labeler/labeler_service.h"

#include <ctime>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/params_view.hpp>
#include <fmt/format.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include "labeler/label_cbor.h"
#include "labeler/xrpc_params.h"
#include "common/comma_list.h"
#include "common/run_blocking.h"

namespace plyr::labeler {

namespace {

using ValuesByUri = StatusOr<std::map<std::string, std::vector<std::string>>>;
constexpr std::string_view kCopyrightViolation = "copyright-violation";

// An ATProto datetime with milliseconds for a Unix time in milliseconds.
std::string FormatDatetimeMs(std::int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Response InvalidRequest(std::string_view message) {
  return ErrorResponse(http::status::bad_request, "InvalidRequest", message);
}

json::object StoredToJson(const StoredLabel& stored) {
  return json::object{{"seq", stored.seq}, {"label", LabelToJson(stored.label)}};
}

// Reads a JSON object body (at most `limit` bytes); an error response when it is not one.
asio::awaitable<std::variant<json::object, Response>> ReadJsonObject(Request& request, std::size_t limit) {
  auto body = co_await request.ReadAll(limit);
  if (auto* e = std::get_if<BodyError>(&body)) co_return ErrorResponseFor(*e, limit);
  boost::system::error_code ec;
  json::value doc = json::parse(std::get<std::string>(body), ec);
  if (ec || !doc.is_object()) co_return InvalidRequest("body must be a JSON object");
  co_return std::move(doc.as_object());
}

// A JSON array of strings under `key`, or why not.
std::variant<std::vector<std::string>, std::string> StringList(const json::object& body, std::string_view key) {
  const auto* v = body.if_contains(key);
  if (!v || !v->is_array()) return fmt::format("`{}` must be an array of strings", key);
  std::vector<std::string> out;
  out.reserve(v->as_array().size());
  for (const auto& item : v->as_array()) {
    if (!item.is_string()) return fmt::format("`{}` must be an array of strings", key);
    out.emplace_back(item.get_string());
  }
  return out;
}

json::object ValuesByUriJson(const std::map<std::string, std::vector<std::string>>& map) {
  json::object out;
  for (const auto& [uri, values] : map) {
    json::array list;
    for (const auto& v : values) list.emplace_back(v);
    out[uri] = std::move(list);
  }
  return out;
}

// The public base URL of a did:web's host: did:web:example.com -> https://example.com;
// localhost (any port) -> http, as ATProto's did:web resolver does.
std::string EndpointOfDidWeb(std::string_view did) {
  std::string_view rest = did.substr(std::string_view("did:web:").size());
  rest = rest.substr(0, rest.find(':'));  // later segments are a path; the endpoint has none
  std::string host;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '%' && i + 2 < rest.size() + 0 && rest.substr(i, 3) == "%3A") {
      host += ':';
      i += 2;
    } else {
      host += rest[i];
    }
  }
  const bool local = host == "localhost" || host.starts_with("localhost:") || host.starts_with("127.0.0.1");
  return (local ? "http://" : "https://") + host;
}

}  // namespace

void AddLabelerSettings(CLI::App& command, const SettingsFile& file, LabelerSettings& s) {
  file.Bind(command, "labeler.listen", s.listen, "Labeler listen address (host:port)");
  file.Bind(command, "labeler.did", s.did,
            "The labeler's DID (did:plc or did:web); default: did:web of the listener, e.g. did:web:localhost%3A8420");
  file.BindSecret(command, "labeler.signing_key", s.signing_key,
            "Hex of a 32-byte secp256k1 private key (plyr.fm's form); default: <data>/labeler/signing-key.json");
  file.Bind(command, "labeler.endpoint", s.endpoint,
            "Public base URL announced in /.well-known/did.json (default: derived from a did:web)");
  file.Bind(command, "labeler.emit_max_labels", s.emit_max_labels, "Most labels one emit request may carry");
  file.Bind(command, "labeler.body_max_bytes", s.body_max_bytes, "Largest request body of the labeler's JSON APIs");
  file.Bind(command, "labeler.stream_window", s.stream_window,
            "Newest labels kept in memory as ready frames for live subscribers");
  file.Bind(command, "labeler.subscriber_max_lag", s.subscriber_max_lag,
            "A caught-up subscriber this many labels behind gets ConsumerTooSlow");
  file.Bind(command, "labeler.subscriber_write_timeout_ms", s.subscriber_write_timeout_ms,
            "A subscriber whose frame write makes no progress this long is closed");
}

std::filesystem::path LabelerKeyPath(const std::filesystem::path& data_dir) {
  return data_dir / "labeler" / "signing-key.json";
}

StatusOr<std::unique_ptr<SigningKey>> LoadLabelerKey(const std::filesystem::path& data_dir, const std::string& hex,
                                                     bool create) {
  if (!hex.empty()) {
    auto key = SigningKey::FromHex(Curve::kK256, hex);
    if (!key.ok()) return Status(key.status().code(), "labeler.signing_key: " + key.status().message());
    return key;
  }
  const auto path = LabelerKeyPath(data_dir);
  std::error_code ec;
  const bool exists = std::filesystem::symlink_status(path, ec).type() != std::filesystem::file_type::not_found;
  if (exists || !create) {
    auto key = SigningKey::Load(path);
    if (!key.ok()) return Status(key.status().code(), "signing key " + path.string() + ": " + key.status().message());
    return key;
  }
  std::filesystem::create_directories(path.parent_path(), ec);
  auto key = SigningKey::Generate(Curve::kK256);
  if (!key) return Status(StatusCode::kInternal, "cannot generate a signing key (crypto library failure)");
  if (Status saved = key->Save(path); !saved.ok()) {
    return Status(saved.code(), "cannot write signing key " + path.string() + ": " + saved.message());
  }
  spdlog::info("labeler: created a k256 signing key file={}", path.string());
  return key;
}

LabelerService::LabelerService(ServiceEnv& env, const LabelerSettings& settings) : env_(env), settings_(settings) {}

LabelerService::~LabelerService() {
  server_.reset();
  read_pool_.join();
}

StatusOr<std::unique_ptr<LabelerService>> LabelerService::Create(ServiceEnv& env, const LabelerSettings& settings) {
  std::unique_ptr<LabelerService> service(new LabelerService(env, settings));
  const auto dir = env.data_dir / "labeler";
  std::error_code fec;
  std::filesystem::create_directories(dir, fec);
  if (fec) return Status(StatusCode::kInternal, "cannot create " + dir.string() + ": " + fec.message());
  if (!settings.did.empty()) {
    if (auto e = CheckDid(settings.did); !e.empty()) return Status(StatusCode::kInvalidArgument, "labeler.did: " + e);
  }

  auto key = LoadLabelerKey(env.data_dir, settings.signing_key, true);
  if (!key.ok()) return key.status();
  service->key_ = std::move(*key);

  // The log: SQLite in the data folder, or PostgreSQL shared with the other labeler instances.
  StatusOr<std::unique_ptr<LabelStore>> store = Status(StatusCode::kInternal, "unset");
  if (env.database_url.empty()) {
    store = LabelStore::Open(dir / "labels.db", LabelStoreOptions{});
  } else {
    auto db = PgDb::Open(env.database_url, env.database_connections);
    if (!db.ok()) return Status(db.status().code(), "the label log's database: " + db.status().message());
    store = LabelStore::OpenPostgres(std::shared_ptr<PgDb>(std::move(*db)), LabelStoreOptions{});
  }
  if (!store.ok()) return store.status();
  service->feed_ = std::make_unique<LabelFeed>(settings.stream_window, (*store)->head_seq());
  // The newest durable seq: what a subscriber that is caught up has seen.
  prometheus::Gauge* head_seq = &prometheus::BuildGauge()
                                     .Name("plyr_labeler_head_seq")
                                     .Help("The newest seq in the label log (durable, sent to subscribers)")
                                     .Register(env.metrics.registry())
                                     .Add({});
  head_seq->Set(static_cast<double>((*store)->head_seq()));
  (*store)->SetCommitListener([feed = service->feed_.get(), head_seq](const std::vector<StoredLabel>& labels) {
    feed->Publish(labels);
    if (!labels.empty()) head_seq->Set(static_cast<double>(labels.back().seq));
  });
  service->store_ = std::move(*store);
  if (!env.database_url.empty()) {
    // Labels the other instances commit reach this one's subscribers in seq order; after a lost
    // connection, whatever was missed meanwhile.
    LabelStore* log = service->store_.get();
    auto listener = PgListener::Start(env.database_url, std::string(kLabelChannel), [log](bool, const std::string&) {
      if (Status caught_up = log->CatchUp(); !caught_up.ok()) {
        spdlog::error("labeler: reading other instances' labels failed error=\"{}\"", caught_up.message());
      }
    });
    if (!listener.ok()) return listener.status();
    service->listener_ = std::move(*listener);
  }

  LabelStreamOptions stream_options;
  stream_options.max_lag = settings.subscriber_max_lag;
  stream_options.write_timeout = std::chrono::milliseconds(settings.subscriber_write_timeout_ms);
  service->stream_ = std::make_unique<LabelStream>(*service->store_, *service->feed_, service->read_pool_,
                                                   stream_options, env.metrics);
  service->labels_emitted_ = &prometheus::BuildCounter()
                                  .Name("plyr_labeler_labels_emitted_total")
                                  .Help("Labels signed and stored")
                                  .Register(env.metrics.registry())
                                  .Add({});

  HttpServerOptions options = env.server_defaults;
  options.service = "labeler";
  auto server = ListenForService(env, settings.listen, service->BuildRouter(), options);
  if (!server.ok()) return server.status();
  service->server_ = std::move(*server);

  service->did_ = settings.did.empty() ? fmt::format("did:web:localhost%3A{}", service->server_->port()) : settings.did;
  if (!settings.endpoint.empty()) {
    service->endpoint_ = settings.endpoint;
  } else if (service->did_.starts_with("did:web:")) {
    service->endpoint_ = EndpointOfDidWeb(service->did_);
  }
  spdlog::info("labeler did={} key={} curve={} head_seq={}", service->did_, service->key_->DidKey(),
               CurveName(service->key_->curve()), service->store_->head_seq());
  return service;
}

Router LabelerService::BuildRouter() {
  Router router;
  router.Add(http::verb::get, "/xrpc/com.atproto.label.queryLabels", this, &LabelerService::QueryLabels);
  router.Add(http::verb::get, "/xrpc/com.atproto.label.subscribeLabels", this, &LabelerService::SubscribeLabels);
  router.Add(http::verb::get, "/.well-known/did.json", this, &LabelerService::DidDocument);
  router.Add(http::verb::post, "/v1/labels", this, &LabelerService::PostLabels);
  router.Add(http::verb::post, "/emit-label", this, &LabelerService::EmitLabel);
  router.Add(http::verb::post, "/internal/labels", this, &LabelerService::InternalLabels);
  router.Add(http::verb::post, "/internal/active-labels", this, &LabelerService::InternalActiveLabels);
  router.Add(http::verb::post, "/internal/negated-labels", this, &LabelerService::InternalNegatedLabels);
  router.Add(http::verb::post, "/internal/labels-by-value", this, &LabelerService::InternalLabelsByValue);
  return router;
}

bool LabelerService::Authorized(const Request& request) const {
  if (HasAdminToken(request, env_.admin_token)) return true;
  // plyr.fm's backend and dashboard send the token as X-Moderation-Key.
  auto key = request.Field("X-Moderation-Key");
  return !key.empty() && ConstantTimeEquals(key, env_.admin_token);
}

// -----------------------------------------------------------------------------------------------
// Public XRPC

namespace {

// Reads queryLabels' parameters: the query, or the 400 answer.
std::variant<LabelQuery, Response> ParseQueryLabels(const Request& request) {
  auto query = ParseQueryLabelsParams(request.url().params());
  if (!query.ok()) return InvalidRequest(query.status().message());
  return std::move(*query);
}

// A failed emit: nothing of it was stored, and no seq was used.
Response EmitFailed(const Status& status) {
  spdlog::error("emit failed: {}", status.ToString());
  return StorageErrorResponse(status.code(), "the labels were not stored");
}

}  // namespace

asio::awaitable<Response> LabelerService::QueryLabels(Request& request) {
  auto parsed = ParseQueryLabels(request);
  if (auto* r = std::get_if<Response>(&parsed)) co_return std::move(*r);
  // GCC 12 may destroy non-trivial temporaries of a co_await expression twice: the call is built
  // as a named local first (the same below).
  std::function<StatusOr<std::vector<StoredLabel>>()> read =
      [this, query = std::move(std::get<LabelQuery>(parsed))] { return store_->Query(query); };
  auto rows = co_await RunBlocking(read_pool_, std::move(read));
  if (!rows) {
    spdlog::error("queryLabels failed: {}", rows.status().message());
    co_return ErrorResponse(http::status::internal_server_error, "InternalError", "reading the label log failed");
  }
  json::object body;
  if (!rows->empty()) body["cursor"] = std::to_string(rows->back().seq);
  json::array labels;
  labels.reserve(rows->size());
  for (const auto& row : *rows) labels.push_back(LabelToJson(row.label));
  body["labels"] = std::move(labels);
  co_return JsonResponse(http::status::ok, body);
}

asio::awaitable<Response> LabelerService::SubscribeLabels(Request& request) {
  auto upgrade = request.Field(http::field::upgrade);
  if (!beast::iequals(upgrade, "websocket")) {
    Response r = ErrorResponse(http::status::upgrade_required, "UpgradeRequired",
                               "subscribeLabels is a WebSocket event stream");
    r.header.set(http::field::upgrade, "websocket");
    co_return r;
  }
  Response r;
  r.take_over = [this, cursor = request.Query("cursor")](asio::ip::tcp::socket& socket,
                                                         const RequestHeader& header) -> asio::awaitable<void> {
    co_await stream_->Serve(socket, header, cursor);
  };
  co_return r;
}

asio::awaitable<Response> LabelerService::DidDocument(Request&) {
  if (!did_.starts_with("did:web:")) {
    co_return ErrorResponse(http::status::not_found, "NotFound", "this labeler's DID is not a did:web");
  }
  json::object doc{
      {"@context", json::array{"https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"}},
      {"id", did_},
      {"verificationMethod", json::array{json::object{{"id", did_ + "#atproto_label"},
                                                      {"type", "Multikey"},
                                                      {"controller", did_},
                                                      {"publicKeyMultibase", key_->Multikey()}}}},
      {"service", json::array{json::object{
                      {"id", "#atproto_labeler"}, {"type", "AtprotoLabeler"}, {"serviceEndpoint", endpoint_}}}},
  };
  co_return JsonResponse(http::status::ok, doc);
}

// -----------------------------------------------------------------------------------------------
// Emitting

asio::awaitable<StatusOr<std::vector<StoredLabel>>> LabelerService::Emit(std::vector<Label> labels) {
  std::vector<StoredLabel> stored;
  stored.reserve(labels.size());
  // A negation must carry a later `cts` than the label it withdraws (AppViews keep the entry with
  // the greatest cts), so negations never reuse the newest millisecond handed out.
  static std::atomic<std::int64_t> last_ms{0};
  for (auto& label : labels) {
    std::int64_t ms = NowMs();
    std::int64_t seen = last_ms.load();
    for (;;) {
      std::int64_t want = std::max(ms, label.neg ? seen + 1 : seen);
      if (last_ms.compare_exchange_weak(seen, want)) {
        ms = want;
        break;
      }
    }
    label.src = did_;
    label.cts = FormatDatetimeMs(ms);
    label.sig = key_->Sign(EncodeUnsignedLabel(label));
    if (label.sig.size() != 64) {
      spdlog::error("signing failed: the crypto library returned no signature");
      co_return Status(StatusCode::kInternal, "signing failed");
    }
    StoredLabel s;
    s.cbor = EncodeSignedLabel(label);
    s.label = std::move(label);
    stored.push_back(std::move(s));
  }

  using Seqs = StatusOr<std::vector<std::int64_t>>;
  auto seqs = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Seqs)>(
      [this, &stored](auto handler) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        std::vector<StoredLabel> copy = stored;
        store_->Append(std::move(copy), [shared](Seqs result) {
          auto executor = asio::get_associated_executor(*shared);
          asio::post(executor, [shared, result = std::move(result)]() mutable { (*shared)(std::move(result)); });
        });
      },
      asio::use_awaitable);
  if (!seqs) co_return seqs.status();
  for (std::size_t i = 0; i < stored.size() && i < seqs->size(); ++i) stored[i].seq = (*seqs)[i];
  labels_emitted_->Increment(static_cast<double>(stored.size()));
  co_return stored;
}

asio::awaitable<Response> LabelerService::PostLabels(Request& request) {
  if (!Authorized(request)) co_return AdminTokenRequired();
  auto body = co_await ReadJsonObject(request, settings_.body_max_bytes);
  if (auto* r = std::get_if<Response>(&body)) co_return std::move(*r);
  auto& object = std::get<json::object>(body);

  std::vector<Label> labels;
  if (const auto* list = object.if_contains("labels")) {
    if (!list->is_array() || list->as_array().empty()) {
      co_return InvalidRequest("`labels` must be a non-empty array");
    }
    if (list->as_array().size() > settings_.emit_max_labels) {
      co_return ErrorResponse(http::status::payload_too_large, "TooManyLabels",
                              fmt::format("at most {} labels per request", settings_.emit_max_labels));
    }
    std::size_t index = 0;
    for (const auto& item : list->as_array()) {
      auto label = LabelFromInput(item, {});
      if (!label.ok()) co_return InvalidRequest(fmt::format("labels[{}]: {}", index, label.status().message()));
      labels.push_back(std::move(*label));
      ++index;
    }
  } else {
    auto label = LabelFromInput(object, {});
    if (!label.ok()) co_return InvalidRequest(label.status().message());
    labels.push_back(std::move(*label));
  }

  auto stored = co_await Emit(std::move(labels));
  if (!stored) co_return EmitFailed(stored.status());
  json::array out;
  for (const auto& s : *stored) out.push_back(StoredToJson(s));
  co_return JsonResponse(http::status::ok, json::object{{"labels", std::move(out)}});
}

asio::awaitable<Response> LabelerService::EmitLabel(Request& request) {
  if (!Authorized(request)) co_return AdminTokenRequired();
  auto body = co_await ReadJsonObject(request, settings_.body_max_bytes);
  if (auto* r = std::get_if<Response>(&body)) co_return std::move(*r);
  // plyr.fm's shape: {"uri", "val"?="copyright-violation", "cid"?, "neg"?, "context"?}. The
  // context (scan details) is moderation bookkeeping, not part of the label; it is not kept.
  auto label = LabelFromInput(std::get<json::object>(body), kCopyrightViolation);
  if (!label.ok()) co_return InvalidRequest(label.status().message());
  std::vector<Label> labels;
  labels.push_back(std::move(*label));
  auto stored = co_await Emit(std::move(labels));
  if (!stored) co_return EmitFailed(stored.status());
  const auto& s = stored->front();
  co_return JsonResponse(http::status::ok, json::object{{"seq", s.seq}, {"label", LabelToJson(s.label)}});
}

// -----------------------------------------------------------------------------------------------
// plyr.fm machine API

asio::awaitable<std::variant<std::vector<std::string>, Response>> LabelerService::ReadAdminList(
    Request& request, std::string_view key) {
  if (!Authorized(request)) co_return AdminTokenRequired();
  auto body = co_await ReadJsonObject(request, settings_.body_max_bytes);
  if (auto* r = std::get_if<Response>(&body)) co_return std::move(*r);
  auto list = StringList(std::get<json::object>(body), key);
  if (auto* e = std::get_if<std::string>(&list)) co_return InvalidRequest(*e);
  co_return std::move(std::get<std::vector<std::string>>(list));
}

asio::awaitable<std::variant<std::map<std::string, std::vector<std::string>>, Response>>
LabelerService::ActiveValuesOfRequest(Request& request) {
  auto uris = co_await ReadAdminList(request, "uris");
  if (auto* r = std::get_if<Response>(&uris)) co_return std::move(*r);
  std::function<ValuesByUri()> read = [this, list = std::move(std::get<0>(uris))] {
    return store_->ActiveValuesByUri(did_, list);
  };
  auto map = co_await RunBlocking(read_pool_, std::move(read));
  if (!map) co_return ErrorResponse(http::status::internal_server_error, "InternalError", "reading labels failed");
  co_return std::move(*map);
}

asio::awaitable<Response> LabelerService::InternalLabels(Request& request) {
  auto map = co_await ActiveValuesOfRequest(request);
  if (auto* r = std::get_if<Response>(&map)) co_return std::move(*r);
  co_return JsonResponse(http::status::ok, json::object{{"labels", ValuesByUriJson(std::get<0>(map))}});
}

asio::awaitable<Response> LabelerService::InternalActiveLabels(Request& request) {
  auto map = co_await ActiveValuesOfRequest(request);
  if (auto* r = std::get_if<Response>(&map)) co_return std::move(*r);
  json::array active;
  for (const auto& [uri, values] : std::get<0>(map)) {
    if (std::find(values.begin(), values.end(), kCopyrightViolation) != values.end()) active.emplace_back(uri);
  }
  co_return JsonResponse(http::status::ok, json::object{{"active_uris", std::move(active)}});
}

asio::awaitable<Response> LabelerService::InternalNegatedLabels(Request& request) {
  auto uris = co_await ReadAdminList(request, "uris");
  if (auto* r = std::get_if<Response>(&uris)) co_return std::move(*r);
  std::function<StatusOr<std::vector<std::string>>()> read = [this, list = std::move(std::get<0>(uris))] {
    return store_->NegatedUris(did_, list, std::string(kCopyrightViolation));
  };
  auto negated = co_await RunBlocking(read_pool_, std::move(read));
  if (!negated) co_return ErrorResponse(http::status::internal_server_error, "InternalError", "reading labels failed");
  json::array out;
  for (const auto& uri : *negated) out.emplace_back(uri);
  co_return JsonResponse(http::status::ok, json::object{{"negated_uris", std::move(out)}});
}

asio::awaitable<Response> LabelerService::InternalLabelsByValue(Request& request) {
  auto values = co_await ReadAdminList(request, "values");
  if (auto* r = std::get_if<Response>(&values)) co_return std::move(*r);
  std::function<ValuesByUri()> read = [this, list = std::move(std::get<0>(values))] {
    return store_->ActiveUrisByValue(did_, list);
  };
  auto map = co_await RunBlocking(read_pool_, std::move(read));
  if (!map) co_return ErrorResponse(http::status::internal_server_error, "InternalError", "reading labels failed");
  co_return JsonResponse(http::status::ok, json::object{{"labels", ValuesByUriJson(*map)}});
}

}  // namespace plyr::labeler
