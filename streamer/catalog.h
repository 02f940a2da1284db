// Catalog: which stored files are playable tracks, who owns them, how they are gated, and which
// renditions (other encodings of the same track) exist.
//
// Kept in a CatalogStore (SQLite, or PostgreSQL shared by every instance; catalog_store.h) and
// mirrored in memory, so the streaming path never touches the database: lookups take a shared
// lock on the mirror; writes go to the store first and update the mirror only once committed.
// On PostgreSQL the other instances' writes arrive as announcements (ApplyChange) and a
// reconnection re-reads everything (Reload). Thread-safe.
//
// Errors: a database failure is the store's Status (its code and message), passed on as is
// unless a function says otherwise; nothing in the mirror changes when a write fails.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "streamer/catalog_store.h"

namespace plyr::streamer {

class Catalog {
 public:
  using FileRemoval = streamer::FileRemoval;

  // Loads the mirror from `store`. Fails with the store's code and "catalog load: ...".
  static StatusOr<std::unique_ptr<Catalog>> Open(std::unique_ptr<CatalogStore> store);

  // The track whose own file id, or one of whose renditions' file ids, is `file_id`.
  // Renditions inherit their track's gate: a gated track cannot be fetched ungated by asking
  // for a rendition's id.
  // Tracks are shared read-only snapshots: a PutTrack replaces the pointer, never the object.
  std::shared_ptr<const Track> FindByAnyFileId(std::string_view file_id) const;
  std::shared_ptr<const Track> FindTrack(std::string_view file_id) const;
  std::optional<FileRecord> FindFile(std::string_view file_id) const;

  // Records an uploaded file (idempotent). A database error as above.
  Status PutFile(const FileRecord& file);
  // Creates or replaces a track with its renditions. FailedPrecondition when the track's file is
  // a rendition of another owner's track, or a rendition's file is another owner's track or
  // rendition: a file is served under the gate of the track that names it, so one owner's file
  // must not be named by another's track. (One owner's tracks may share files: the same bytes
  // are one file.) A database error with "catalog write failed: " and the store's message.
  Status PutTrack(const Track& track);
  // Removes a track and its renditions. OK with *existed false when there was no such track; a
  // database error as above.
  Status RemoveTrack(std::string_view file_id, bool* existed);
  // The tracks that name `file_id`, as their own file or as a rendition (sorted ids).
  std::vector<std::string> TracksNaming(std::string_view file_id) const;
  // The same for every file named by some track, from one pass over the tracks.
  std::unordered_map<std::string, std::vector<std::string>> TracksNamingEachFile() const;
  // Every recorded file, in id order, after `after` (exclusive), at most `limit`.
  std::vector<FileRecord> ListFiles(std::string_view after, std::size_t limit) const;
  // Forgets a file: every track naming it as its own file is removed, every rendition naming it
  // is dropped from its track, then the file's record (one transaction). The caller removes the
  // bytes. Fills what was removed; a database error as above (nothing removed).
  Status RemoveFile(std::string_view file_id, FileRemoval* removal);

  // An announcement of another instance's write ("track <id>", "file <id>"): the entity is read
  // again from the store. InvalidArgument for a payload that is not one. Blocking.
  Status ApplyChange(std::string_view payload);
  // Reads the whole store again and replaces the mirror (after a lost connection). Blocking.
  Status Reload();
  std::string_view engine() const { return store_->engine(); }

 private:
  explicit Catalog(std::unique_ptr<CatalogStore> store) : store_(std::move(store)) {}
  void IndexLocked(const Track& track);
  void UnindexLocked(const std::string& file_id);
  // Sets (or, for nullopt, erases) one entity of the mirror.
  void SetTrackLocked(const std::string& file_id, std::optional<Track> track);

  std::unique_ptr<CatalogStore> store_;
  // Writers take write_mutex_ across the database commit and the mirror's update, so the mirror
  // changes in the order the commits happened; readers take only mutex_.
  std::mutex write_mutex_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const Track>> tracks_;  // guarded by mutex_
  std::unordered_map<std::string, std::string> rendition_owner_;  // rendition id -> track id; mutex_
  std::unordered_map<std::string, FileRecord> files_;             // guarded by mutex_
};

}  // namespace plyr::streamer
