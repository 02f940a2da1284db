// LabelerService: a spec-exact ATProto labeler.
//
// Routes (docs/labeler.md has the full contract):
//   GET  /xrpc/com.atproto.label.queryLabels        public
//   GET  /xrpc/com.atproto.label.subscribeLabels    public, WebSocket (LabelStream)
//   GET  /.well-known/did.json                      public, when the labeler's DID is a did:web
//   POST /v1/labels                                 admin: emit one label or a batch
//   POST /emit-label, /internal/labels, /internal/active-labels, /internal/negated-labels,
//        /internal/labels-by-value                  admin: drop-in for plyr.fm's moderation service
// Admin routes take `Authorization: Bearer <token>` or `X-Moderation-Key: <token>`.
//
// Emitting: validate, stamp `src` and `cts`, sign (on the I/O thread), append to the log (group
// commit), answer once durable; the stream sees the label before the answer leaves.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/pg_listener.h"
#include "common/service_env.h"
#include "common/settings.h"
#include "labeler/label_feed.h"
#include "labeler/label_store.h"
#include "labeler/label_stream.h"
#include "labeler/signing_key.h"

namespace plyr::labeler {

struct LabelerSettings {
  std::string listen = "127.0.0.1:8420";
  std::string did;          // empty: the did:web of the listener (did:web:localhost%3A8420)
  std::string signing_key;  // hex of a 32-byte secp256k1 scalar; empty: <data>/labeler/signing-key.json
  std::string endpoint;     // public base URL for did.json; empty: derived from a did:web
  std::uint64_t emit_max_labels = 1000;
  std::uint64_t body_max_bytes = 1 << 20;
  std::uint64_t stream_window = 16384;
  std::uint64_t subscriber_max_lag = 100'000;
  std::int64_t subscriber_write_timeout_ms = 30'000;
};

// Registers the labeler's settings (labeler.*) on `command`.
void AddLabelerSettings(CLI::App& command, const SettingsFile& file, LabelerSettings& settings);

// The signing key the labeler uses with these settings: the configured hex, else the key file in
// <data>/labeler (created with a new k256 key when `create` and no file exists). Fails with
// SigningKey's codes and a message that says which key ("labeler.signing_key: ...",
// "signing key PATH: ...", "cannot write signing key PATH: ...").
StatusOr<std::unique_ptr<SigningKey>> LoadLabelerKey(const std::filesystem::path& data_dir, const std::string& hex,
                                                     bool create);
std::filesystem::path LabelerKeyPath(const std::filesystem::path& data_dir);

class LabelerService final : public Service {
 public:
  // Loads (or creates) the signing key, opens the label log under <data>/labeler and binds the
  // listener (not yet accepting). InvalidArgument for a bad setting (labeler.did, the listen
  // address, a malformed key); otherwise the code of what failed, with a message for the log.
  static StatusOr<std::unique_ptr<LabelerService>> Create(ServiceEnv& env, const LabelerSettings& settings);
  ~LabelerService() override;

  std::string_view name() const override { return "labeler"; }
  HttpServer& server() override { return *server_; }
  const std::string& did() const { return did_; }

 private:
  LabelerService(ServiceEnv& env, const LabelerSettings& settings);
  Router BuildRouter();
  bool Authorized(const Request& request) const;

  asio::awaitable<Response> QueryLabels(Request& request);
  asio::awaitable<Response> SubscribeLabels(Request& request);
  asio::awaitable<Response> DidDocument(Request& request);
  asio::awaitable<Response> PostLabels(Request& request);
  asio::awaitable<Response> EmitLabel(Request& request);
  asio::awaitable<Response> InternalLabels(Request& request);
  asio::awaitable<Response> InternalActiveLabels(Request& request);
  asio::awaitable<Response> InternalNegatedLabels(Request& request);
  asio::awaitable<Response> InternalLabelsByValue(Request& request);

  // The admin check, a JSON object body and its string array `key`: the list, or the answer.
  asio::awaitable<std::variant<std::vector<std::string>, Response>> ReadAdminList(Request& request,
                                                                                   std::string_view key);
  // The active values per uri for the admin request's {"uris": [...]}, or the answer.
  asio::awaitable<std::variant<std::map<std::string, std::vector<std::string>>, Response>> ActiveValuesOfRequest(
      Request& request);
  // Signs and stores `labels` (src and cts are stamped here); the stored labels once durable.
  asio::awaitable<StatusOr<std::vector<StoredLabel>>> Emit(std::vector<Label> labels);

  ServiceEnv& env_;
  LabelerSettings settings_;
  std::string did_;
  std::string endpoint_;
  std::unique_ptr<SigningKey> key_;
  // Destroyed in reverse: the store drains its queue into the feed, so the feed outlives it.
  std::unique_ptr<LabelFeed> feed_;
  std::unique_ptr<LabelStore> store_;
  std::unique_ptr<PgListener> listener_;  // on PostgreSQL: the other instances' commits
  asio::thread_pool read_pool_{2};
  std::unique_ptr<LabelStream> stream_;
  prometheus::Counter* labels_emitted_ = nullptr;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace plyr::labeler
