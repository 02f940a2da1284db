// StreamerService: serves stored audio with HTTP byte ranges and enforces supporter gates
// before a byte leaves.
//
// Routes (docs/streamer.md has the full contract):
//   GET|HEAD /audio/{file_id}[?rendition=NAME]   public, or gated by a stream ticket
//   PUT      /v1/files                           admin: upload raw bytes -> {file_id,size,content_type}
//   GET|HEAD /v1/files/{file_id}                 admin: a stored file's bytes, whatever its gate
//   PUT|GET|DELETE /v1/tracks/{file_id}          admin: catalog entries (owner, gate, renditions)
//
// Owns the blob store, the catalog, the ticket verifier and the supporter client; borrows the
// ServiceEnv. Handlers run concurrently on every I/O thread; all shared state is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <map>
#include <utility>

#include <CLI/CLI.hpp>
#include <boost/asio/thread_pool.hpp>
#include <prometheus/counter.h>

#include "common/blob_store.h"
#include "common/pg_listener.h"
#include "common/s3_client.h"
#include "common/service_env.h"
#include "common/settings.h"
#include "streamer/byte_range.h"
#include "streamer/catalog.h"
#include "streamer/hot_blob_cache.h"
#include "streamer/stream_ticket.h"
#include "streamer/supporter_client.h"

namespace plyr::streamer {

struct StreamerSettings {
  std::string listen = "127.0.0.1:8410";
  std::string supporter_url = "https://atprotofans.com";
  std::int64_t supporter_timeout_ms = 5000;
  std::int64_t supporter_cache_seconds = 300;
  std::string ticket_public_key;           // hex; empty: the key pair in the data folder
  std::int64_t ticket_max_ttl_seconds = 86400;
  std::uint64_t upload_max_bytes = 1536ull << 20;
  std::string file_send_mode = "sendfile";  // "sendfile" or "read" (io_uring read + send); bench/RESULTS.md
  std::uint64_t max_ranges = 8;
  // Cache-Control of public audio. Content-addressed bytes never change, so the default lets a
  // CDN keep them a year; the price is that gating a public track later cannot reach copies
  // already cached (docs/streamer.md).
  std::string public_cache_control = "public, max-age=31536000, immutable";
  // With an object store (storage.s3.*): public audio answered with a redirect to the store
  // instead of proxied. "" (off: everything proxied), "presigned" (a URL signed for
  // presigned_ttl_seconds), or the base URL of a CDN in front of the bucket (docs/streamer.md).
  std::string public_redirect;
  std::int64_t presigned_ttl_seconds = 3600;
  // With an object store: local copies of the most served files, up to this many bytes (0: none;
  // streamer.md, "On an object store").
  std::uint64_t cache_bytes = 1ull << 30;
};

// Registers the streamer's settings (streamer.*) on `command`.
void AddStreamerSettings(CLI::App& command, const SettingsFile& file, StreamerSettings& settings);

class StreamerService final : public Service {
 public:
  // Opens the store and catalog under <data>/streamer and binds the listener (not yet accepting).
  // InvalidArgument for a bad setting (the listen address, the supporter URL, a ticket public
  // key) or a malformed ticket key file; otherwise the code of what failed (a database's, a
  // file's, Unavailable for a listener that cannot bind), with a message for the log.
  static StatusOr<std::unique_ptr<StreamerService>> Create(ServiceEnv& env, const StreamerSettings& settings);
  ~StreamerService() override;

  std::string_view name() const override { return "streamer"; }
  HttpServer& server() override { return *server_; }

 private:
  StreamerService(ServiceEnv& env, const StreamerSettings& settings);
  Router BuildRouter();
  // The catalog's database: PostgreSQL when database.url is set, else SQLite in `dir`.
  static StatusOr<std::unique_ptr<CatalogStore>> OpenCatalogStore(const ServiceEnv& env, const std::filesystem::path& dir);

  asio::awaitable<Response> ServeAudio(Request& request);
  asio::awaitable<Response> UploadFile(Request& request);
  asio::awaitable<Response> GetFile(Request& request);
  asio::awaitable<Response> PutTrack(Request& request);
  asio::awaitable<Response> GetTrack(Request& request);
  asio::awaitable<Response> DeleteTrack(Request& request);
  asio::awaitable<Response> DeleteFile(Request& request);
  asio::awaitable<Response> ListFiles(Request& request);
  asio::awaitable<Response> CollectGarbage(Request& request);
  // Removes a file's local bytes, then the catalog's record of it and of what named it. Blocking.
  // With an object store, the caller removes the object (RemoveObject) first.
  Status RemoveFileNow(const std::string& file_id, Catalog::FileRemoval* removal);

  // With an object store (objects_ set): where a blob lives in it, its size (the catalog's
  // record, else the store's), the object removed, and a range of it proxied.
  std::string ObjectKey(std::string_view file_id) const { return object_prefix_ + std::string(file_id); }
  asio::awaitable<StatusOr<std::uint64_t>> ObjectSize(const std::string& file_id);
  asio::awaitable<Status> PutObject(const std::string& file_id, std::uint64_t size, const std::string& content_type);
  asio::awaitable<Status> RemoveObject(const std::string& file_id);
  // A proxied slice of the object, opened now (a failure is then answered before any byte).
  asio::awaitable<StatusOr<StreamSlice>> OpenObjectSlice(const std::string& file_id, std::uint64_t offset,
                                                         std::uint64_t length);
  // A proxied slice opened on its first read (the later parts of a multipart/byteranges answer).
  StreamSlice LazyObjectSlice(const std::string& file_id, std::uint64_t offset, std::uint64_t length);
  Response RedirectToObject(const std::string& file_id) const;
  // After a proxied read: fetches the whole object into the hot-file cache in the background,
  // when it is worth it (HotBlobCache::BeginFill).
  void MaybeCache(const std::string& file_id, std::uint64_t size);
  asio::awaitable<void> FillCache(std::string file_id, std::uint64_t size);
  // Removes cached copies from disk (evicted, or taken down). Blocking.
  void DropCopies(const std::vector<std::string>& file_ids);
  asio::awaitable<Response> CollectObjectGarbage(std::int64_t min_age_s);

  // Decides whether the request may play `track`; an error response when it may not.
  asio::awaitable<std::optional<Response>> CheckGate(Request& request, const Track& track);
  asio::awaitable<std::optional<Response>> DecideGate(Request& request, const Track& track, std::string* decision);

  ServiceEnv& env_;
  StreamerSettings settings_;
  RangeLimits range_limits_;
  // Without an object store, the blobs; with one, only uploads between their arrival and their
  // copy to the store.
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<S3Client> objects_;  // null: blobs stay in blobs_
  std::string object_prefix_;
  std::unique_ptr<HotBlobCache> cache_;  // with objects_ and a cache budget: copies in blobs_
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<PgListener> listener_;  // on PostgreSQL: other instances' catalog writes
  std::unique_ptr<TicketVerifier> tickets_;
  std::unique_ptr<SupporterClient> supporters_;
  // Writes that wait for the disk (an upload's fsync and rename, the catalog's commits) run here,
  // never on the I/O threads. Declared after what its tasks use, so it is joined before they go.
  std::unique_ptr<asio::thread_pool> blocking_pool_;
  // Metrics (docs/streamer.md): series made up front, so requests never take the registry's lock.
  std::map<std::string, prometheus::Counter*> ticket_outcomes_;  // by TicketErrorName, and "ok"
  std::map<std::pair<std::string, std::string>, prometheus::Counter*> gate_decisions_;  // (gate, decision)
  prometheus::Counter* cache_hits_ = nullptr;    // reads served from the hot-file cache
  prometheus::Counter* cache_misses_ = nullptr;  // reads proxied from the store
  std::unique_ptr<HttpServer> server_;
};

}  // namespace plyr::streamer
