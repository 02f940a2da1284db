// FingerprintService: Chromaprint fingerprints, a registry of reference works, and matching of
// uploads against it, over HTTP (docs/fingerprint.md has the full contract).
//
//   POST   /v1/fingerprint           token: audio body or {"file_id"} -> duration, fingerprint
//   POST   /v1/references            token: audio body (?title=&artist=...) or JSON with a
//                                    fingerprint or a file_id -> 201 {"id", ...}
//   GET    /v1/references[?limit=&before=]  token: newest first
//   GET    /v1/references/{id}       token
//   DELETE /v1/references/{id}       token
//   POST   /v1/match                 token: audio body, {"file_id"} or {"fingerprint", "variants"?}
//                                    -> matches and the moderation signals
//   GET    /v1/index                 token: size and memory of the index
//
// A reference is committed to SQLite before it is acknowledged and then added to the in-memory
// index (fingerprint/reference_index.h), which is rebuilt from the database at start.
//
// Threads: handlers are coroutines on the I/O threads; decoding, fingerprinting and matching run
// on the worker pool, SQLite writes on a small blocking pool, never on an I/O thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
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
#include "fingerprint/matcher.h"
#include "fingerprint/reference_index.h"
#include "fingerprint/reference_store.h"

namespace plyr::fingerprint {

struct FingerprintSettings {
  std::string listen = "127.0.0.1:8440";
  unsigned workers = 0;  // fingerprinting and matching threads; 0: one per core
  std::uint64_t upload_max_bytes = 1536ull << 20;
  std::int64_t max_duration_s = 4 * 3600;
  std::string speeds = "1,0.98,1.02";  // query variants: the speed-ups a match undoes
  double max_ber = 0.21;               // a window matches at this bit error rate or under,
  double min_contrast = 0.15;          // this far under its BER elsewhere in the work,
  double min_activity = 0.22;          // with audio that changes this much on both sides
  double min_distinct = 0.35;          // guard: windows with fewer distinct items are skipped
  int key_bits = 22;
  std::int64_t flag_dominant_pct = 70;   // is_flagged when one work has this share of matched windows
  std::int64_t flag_sustained_songs = 3;  // ... or this many works each matched in 3+ windows
  std::string streamer_url;    // for {"file_id"}; empty: http://127.0.0.1:8410
  std::string streamer_token;  // empty: the admin token
  std::int64_t streamer_timeout_ms = 120'000;
};

// Registers the fingerprint service's settings (fingerprint.*) on `command`.
void AddFingerprintSettings(CLI::App& command, const SettingsFile& file, FingerprintSettings& settings);

class FingerprintService final : public Service {
 public:
  // Opens <data>/fingerprint/references.db, loads every reference into the index and binds the
  // listener (not yet accepting).
  static StatusOr<std::unique_ptr<FingerprintService>> Create(ServiceEnv& env, const FingerprintSettings& settings);
  ~FingerprintService() override;

  std::string_view name() const override { return "fingerprint"; }
  HttpServer& server() override { return *server_; }

 private:
  // A query or a reference as fingerprints: the as-given print first, then speed variants.
  struct Prints {
    double duration_s = 0;
    std::vector<double> speeds;
    std::vector<media::FingerprintItems> items;
    std::string title, artist;  // tags of an audio file, when it had them
  };
  // Metadata of a live reference, for answers.
  struct RefInfo {
    std::string id, title, artist, owner_did, isrc;
    double duration_s = 0;
  };

  FingerprintService(ServiceEnv& env, const FingerprintSettings& settings);
  Router BuildRouter();

  asio::awaitable<Response> Fingerprint(Request& request);
  asio::awaitable<Response> AddReference(Request& request);
  asio::awaitable<Response> ListReferences(Request& request);
  asio::awaitable<Response> GetReference(Request& request);
  asio::awaitable<Response> DeleteReference(Request& request);
  asio::awaitable<Response> Match(Request& request);
  asio::awaitable<Response> IndexStats(Request& request);

  // Reads the request's audio (the body, or the file a JSON {"file_id"} names) or its JSON
  // fingerprint, and fingerprints audio at `speeds` on the worker pool. Errors are answers.
  asio::awaitable<std::variant<Prints, Response>> ReadPrints(Request& request, const std::vector<double>& speeds,
                                                             boost::json::object* json_out);
  asio::awaitable<StatusOr<Prints>> FingerprintAudio(std::filesystem::path path, std::vector<double> speeds);
  asio::awaitable<Status> FetchFromStreamer(const std::string& file_id, const std::filesystem::path& into);

  boost::json::object MatchJson(const MatchResult& result, const std::string& uploader_did) const;
  std::string RefIdFor(ReferenceIndex::RefId row) const;
  // Adds a reference to refs_ and row_by_id_; the caller holds refs_mutex_ (or runs alone, at start).
  void RememberLocked(ReferenceIndex::RefId row, RefInfo info);
  // A committed reference becomes visible to matching; a removed one stops being (once the
  // matches in flight, which hold the index, finish). Both are idempotent: a change this
  // instance made also comes back to it from the database's announcements.
  void IndexReference(const ReferenceRecord& record);
  void UnindexRow(ReferenceIndex::RefId row);
  // From the database's announcements (PostgreSQL: other instances' changes), on the listener's
  // thread: "add <row>", "del <row>", or a resync after the listener (re)connected.
  void OnReferenceChange(bool resync, const std::string& payload);
  // Brings the index in line with the store: adds what it lacks, removes what is gone.
  void SyncWithStore();
  void UpdateIndexGauges();

  ServiceEnv& env_;
  FingerprintSettings settings_;
  std::vector<double> speeds_;
  MatchOptions match_options_;
  std::string streamer_url_;
  std::string streamer_token_;
  std::filesystem::path work_dir_;
  std::unique_ptr<BlobStore> uploads_;  // query and reference audio while it is read; never kept
  std::unique_ptr<ReferenceStore> store_;
  std::unique_ptr<ReferenceIndex> index_;
  std::unique_ptr<asio::thread_pool> worker_pool_;
  std::unique_ptr<asio::thread_pool> blocking_pool_;
  std::unique_ptr<HttpServer> server_;

  mutable std::mutex refs_mutex_;
  std::unordered_map<ReferenceIndex::RefId, RefInfo> refs_;  // guarded by refs_mutex_
  std::unordered_map<std::string, ReferenceIndex::RefId> row_by_id_;  // guarded by refs_mutex_

  prometheus::Family<prometheus::Counter>* matches_ = nullptr;
  prometheus::Gauge* references_gauge_ = nullptr;
  prometheus::Gauge* index_bytes_gauge_ = nullptr;
  // Last, so that it stops (with its thread) before anything it touches goes.
  std::unique_ptr<PgListener> listener_;
};

}  // namespace plyr::fingerprint
