// CatalogStore: where the track catalog is kept: SQLite in the data folder (the embedded
// default) or PostgreSQL shared by every streamer instance (database.url). The Catalog
// (catalog.h) mirrors it in memory; this is the persisted side only.
//
// Every write is one transaction. On PostgreSQL each write also announces what it changed on
// kCatalogChannel, in the same transaction ("track <id>", "file <id>", one per entity touched),
// so the other instances re-read those entities once it commits.
//
// Errors: the database's Status (its code and message); FailedPrecondition from PutTrack when
// another owner's track names one of the track's files. Every call blocks on the disk or the
// network: call from worker threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/migrations.h"
#include "common/pg_db.h"
#include "common/sqlite_db.h"
#include "common/status.h"

namespace plyr::streamer {

// Who may play a track (plyr.fm's support_gate).
enum class Gate {
  kNone,       // anyone
  kSupporters, // "any": the owner, or a supporter of the owner per atprotofans
  kCopyright,  // "copyright": any viewer holding a valid ticket
};
std::string_view GateName(Gate gate);                    // "none", "any", "copyright"
std::optional<Gate> ParseGate(std::string_view name);

struct Rendition {
  std::string file_id;
  std::string content_type;
};

struct Track {
  std::string file_id;
  std::string owner_did;
  Gate gate = Gate::kNone;
  std::string content_type;
  std::map<std::string, Rendition> renditions;  // by name, e.g. "mp3-128"
};

// An uploaded file's record (the bytes live in the blob store).
struct FileRecord {
  std::string file_id;
  std::uint64_t size = 0;
  std::string content_type;
};

// What removing a file took along.
struct FileRemoval {
  std::vector<std::string> tracks_removed;
  std::vector<std::string> renditions_removed;  // "<track id>/<rendition name>", sorted
};

// The catalog's name in schema_migrations (common/migrations.h), its migrations (both
// dialects), and the channel PostgreSQL announces changes on.
inline constexpr std::string_view kCatalogStoreName = "streamer.catalog";
std::span<const Migration> CatalogMigrations();
inline constexpr std::string_view kCatalogChannel = "plyr_streamer_catalog";

class CatalogStore {
 public:
  virtual ~CatalogStore() = default;

  // Everything, for the mirror.
  virtual Status LoadAll(std::vector<FileRecord>* files, std::vector<Track>* tracks) = 0;
  // One entity as it is now (nullopt: there is none), for an announced change.
  virtual StatusOr<std::optional<Track>> LoadTrack(const std::string& file_id) = 0;
  virtual StatusOr<std::optional<FileRecord>> LoadFile(const std::string& file_id) = 0;

  // Records a file (idempotent).
  virtual Status PutFile(const FileRecord& file) = 0;
  // Creates or replaces a track and its renditions, after checking, inside the transaction, that
  // no track of another owner names any of its files (FailedPrecondition, naming the rendition and
  // the other track).
  virtual Status PutTrack(const Track& track) = 0;
  // Removes a track and its renditions; false when there was none.
  virtual StatusOr<bool> RemoveTrack(const std::string& file_id) = 0;
  // Removes the track that is this file, every rendition naming it, and its record.
  virtual StatusOr<FileRemoval> RemoveFile(const std::string& file_id) = 0;

  // "SQLite" or "PostgreSQL", for messages.
  virtual std::string_view engine() const = 0;
};

// The refusals of PutTrack, worded alike on both engines.
Status OwnTrackConflict(const std::string& holder);
Status RenditionConflict(const std::string& name, const std::string& holder);

// Both migrate the database to this build's schema first (an error names the store).
StatusOr<std::unique_ptr<CatalogStore>> OpenSqliteCatalogStore(std::unique_ptr<SqliteDb> db);
StatusOr<std::unique_ptr<CatalogStore>> OpenPgCatalogStore(std::shared_ptr<PgDb> db);

}  // namespace plyr::streamer
