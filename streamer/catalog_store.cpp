// The catalog on SQLite (the embedded default), and what both engines share: gates and the
// migrations.
#include "streamer/catalog_store.h"

#include <algorithm>

namespace plyr::streamer {

std::string_view GateName(Gate gate) {
  switch (gate) {
    case Gate::kNone: return "none";
    case Gate::kSupporters: return "any";
    case Gate::kCopyright: return "copyright";
  }
  return "none";
}

std::optional<Gate> ParseGate(std::string_view name) {
  if (name == "none") return Gate::kNone;
  if (name == "any") return Gate::kSupporters;
  if (name == "copyright") return Gate::kCopyright;
  return std::nullopt;
}

namespace {

// Version 1 is the schema of the builds before migrations (IF NOT EXISTS: adopted as it is). On
// PostgreSQL, which other services' tables share, the tables carry the service's name.
constexpr Migration kMigrations[] = {
    {"files, tracks and renditions",
     "CREATE TABLE IF NOT EXISTS files ("
     "  file_id TEXT PRIMARY KEY, size INTEGER NOT NULL, content_type TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL DEFAULT (unixepoch()));"
     "CREATE TABLE IF NOT EXISTS tracks ("
     "  file_id TEXT PRIMARY KEY, owner_did TEXT NOT NULL, gate TEXT NOT NULL, content_type TEXT NOT NULL,"
     "  updated_at INTEGER NOT NULL DEFAULT (unixepoch()));"
     "CREATE TABLE IF NOT EXISTS renditions ("
     "  track_file_id TEXT NOT NULL REFERENCES tracks(file_id) ON DELETE CASCADE,"
     "  name TEXT NOT NULL, file_id TEXT NOT NULL, content_type TEXT NOT NULL,"
     "  PRIMARY KEY (track_file_id, name))",
     "CREATE TABLE streamer_files ("
     "  file_id TEXT PRIMARY KEY, size BIGINT NOT NULL, content_type TEXT NOT NULL,"
     "  created_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::bigint));"
     "CREATE TABLE streamer_tracks ("
     "  file_id TEXT PRIMARY KEY, owner_did TEXT NOT NULL, gate TEXT NOT NULL, content_type TEXT NOT NULL,"
     "  updated_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::bigint));"
     "CREATE TABLE streamer_renditions ("
     "  track_file_id TEXT NOT NULL REFERENCES streamer_tracks(file_id) ON DELETE CASCADE,"
     "  name TEXT NOT NULL, file_id TEXT NOT NULL, content_type TEXT NOT NULL,"
     "  PRIMARY KEY (track_file_id, name))"},
    // Who names a file is asked on every track write (the owner check) and every file removal.
    {"renditions by file",
     "CREATE INDEX IF NOT EXISTS renditions_by_file ON renditions (file_id)",
     "CREATE INDEX streamer_renditions_by_file ON streamer_renditions (file_id)"},
};

// The track of another owner that names `file_id` (as its own file or a rendition's), if any.
constexpr std::string_view kOtherOwnersTrack =
    "SELECT file_id FROM tracks WHERE file_id = ?1 AND file_id <> ?2 AND owner_did <> ?3 "
    "UNION ALL "
    "SELECT r.track_file_id FROM renditions r JOIN tracks t ON t.file_id = r.track_file_id "
    "WHERE r.file_id = ?1 AND r.track_file_id <> ?2 AND t.owner_did <> ?3 LIMIT 1";

class SqliteCatalogStore final : public CatalogStore {
 public:
  explicit SqliteCatalogStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  Status LoadAll(std::vector<FileRecord>* files, std::vector<Track>* tracks) override {
    Status read = db_->Run("SELECT file_id, size, content_type FROM files", {}, [&](const SqlRow& row) {
      files->push_back(FileRecord{row.Text(0), static_cast<std::uint64_t>(row.Int(1)), row.Text(2)});
    });
    if (!read.ok()) return read;
    std::map<std::string, Track> loaded;
    read = db_->Run("SELECT file_id, owner_did, gate, content_type FROM tracks", {},
                    [&](const SqlRow& row) { loaded[row.Text(0)] = TrackOf(row); });
    if (!read.ok()) return read;
    read = db_->Run("SELECT track_file_id, name, file_id, content_type FROM renditions", {}, [&](const SqlRow& row) {
      if (auto it = loaded.find(row.Text(0)); it != loaded.end()) {
        it->second.renditions[row.Text(1)] = Rendition{row.Text(2), row.Text(3)};
      }
    });
    for (auto& [id, track] : loaded) tracks->push_back(std::move(track));
    return read;
  }

  StatusOr<std::optional<Track>> LoadTrack(const std::string& file_id) override {
    std::optional<Track> track;
    Status read = db_->Run("SELECT file_id, owner_did, gate, content_type FROM tracks WHERE file_id = ?1", {file_id},
                           [&](const SqlRow& row) { track = TrackOf(row); });
    if (read.ok() && track) {
      read = db_->Run("SELECT name, file_id, content_type FROM renditions WHERE track_file_id = ?1", {file_id},
                      [&](const SqlRow& row) { track->renditions[row.Text(0)] = Rendition{row.Text(1), row.Text(2)}; });
    }
    if (!read.ok()) return read;
    return track;
  }

  StatusOr<std::optional<FileRecord>> LoadFile(const std::string& file_id) override {
    std::optional<FileRecord> file;
    Status read = db_->Run("SELECT file_id, size, content_type FROM files WHERE file_id = ?1", {file_id},
                           [&](const SqlRow& row) {
                             file = FileRecord{row.Text(0), static_cast<std::uint64_t>(row.Int(1)), row.Text(2)};
                           });
    if (!read.ok()) return read;
    return file;
  }

  Status PutFile(const FileRecord& file) override {
    return db_->Run("INSERT INTO files (file_id, size, content_type) VALUES (?1, ?2, ?3) ON CONFLICT(file_id) DO NOTHING",
                    {file.file_id, static_cast<std::int64_t>(file.size), file.content_type});
  }

  Status PutTrack(const Track& track) override {
    return db_->Transaction([&] {
      if (Status refused = CheckOwners(track); !refused.ok()) return refused;
      Status s = db_->Run("INSERT INTO tracks (file_id, owner_did, gate, content_type) VALUES (?1, ?2, ?3, ?4) "
                          "ON CONFLICT(file_id) DO UPDATE SET owner_did = excluded.owner_did, gate = excluded.gate, "
                          "content_type = excluded.content_type, updated_at = unixepoch()",
                          {track.file_id, track.owner_did, std::string(GateName(track.gate)), track.content_type});
      if (!s.ok()) return s;
      s = db_->Run("DELETE FROM renditions WHERE track_file_id = ?1", {track.file_id});
      for (auto it = track.renditions.begin(); s.ok() && it != track.renditions.end(); ++it) {
        s = db_->Run("INSERT INTO renditions (track_file_id, name, file_id, content_type) VALUES (?1, ?2, ?3, ?4)",
                     {track.file_id, it->first, it->second.file_id, it->second.content_type});
      }
      return s;
    });
  }

  StatusOr<bool> RemoveTrack(const std::string& file_id) override {
    bool existed = false;
    Status removed = db_->Transaction([&] {
      Status s = db_->Run("SELECT 1 FROM tracks WHERE file_id = ?1", {file_id}, [&](const SqlRow&) { existed = true; });
      if (s.ok()) s = db_->Run("DELETE FROM renditions WHERE track_file_id = ?1", {file_id});
      if (s.ok()) s = db_->Run("DELETE FROM tracks WHERE file_id = ?1", {file_id});
      return s;
    });
    if (!removed.ok()) return removed;
    return existed;
  }

  StatusOr<FileRemoval> RemoveFile(const std::string& file_id) override {
    FileRemoval removal;
    Status removed = db_->Transaction([&] {
      removal = {};
      Status s = db_->Run("SELECT file_id FROM tracks WHERE file_id = ?1", {file_id},
                          [&](const SqlRow& row) { removal.tracks_removed.push_back(row.Text(0)); });
      if (!s.ok()) return s;
      s = db_->Run("SELECT track_file_id, name FROM renditions WHERE file_id = ?1 AND track_file_id <> ?1", {file_id},
                   [&](const SqlRow& row) { removal.renditions_removed.push_back(row.Text(0) + "/" + row.Text(1)); });
      for (const char* sql : {"DELETE FROM renditions WHERE track_file_id = ?1", "DELETE FROM tracks WHERE file_id = ?1",
                              "DELETE FROM renditions WHERE file_id = ?1", "DELETE FROM files WHERE file_id = ?1"}) {
        if (s.ok()) s = db_->Run(sql, {file_id});
      }
      return s;
    });
    if (!removed.ok()) return removed;
    std::sort(removal.renditions_removed.begin(), removal.renditions_removed.end());
    return removal;
  }

  std::string_view engine() const override { return "SQLite"; }

 private:
  static Track TrackOf(const SqlRow& row) {
    Track t;
    t.file_id = row.Text(0);
    t.owner_did = row.Text(1);
    t.gate = ParseGate(row.Text(2)).value_or(Gate::kSupporters);  // unknown gate: fail closed
    t.content_type = row.Text(3);
    return t;
  }

  Status CheckOwners(const Track& track) {
    auto holder_of = [&](const std::string& file_id, std::string* holder) {
      return db_->Run(kOtherOwnersTrack, {file_id, track.file_id, track.owner_did},
                      [&](const SqlRow& row) { *holder = row.Text(0); });
    };
    std::string holder;
    if (Status s = holder_of(track.file_id, &holder); !s.ok()) return s;
    if (!holder.empty()) return OwnTrackConflict(holder);
    for (const auto& [name, r] : track.renditions) {
      if (Status s = holder_of(r.file_id, &holder); !s.ok()) return s;
      if (!holder.empty()) return RenditionConflict(name, holder);
    }
    return OkStatus();
  }

  std::unique_ptr<SqliteDb> db_;
};

}  // namespace

Status OwnTrackConflict(const std::string& holder) {
  return Status(StatusCode::kFailedPrecondition, "the file is a rendition of track " + holder + " of another owner");
}

Status RenditionConflict(const std::string& name, const std::string& holder) {
  return Status(StatusCode::kFailedPrecondition,
                "rendition '" + name + "' names a file of track " + holder + " of another owner");
}

std::span<const Migration> CatalogMigrations() { return kMigrations; }

StatusOr<std::unique_ptr<CatalogStore>> OpenSqliteCatalogStore(std::unique_ptr<SqliteDb> db) {
  if (auto migrated = Migrate(*db, kCatalogStoreName, kMigrations); !migrated.ok()) {
    return Status(migrated.status().code(), "catalog schema: " + migrated.status().message());
  }
  return std::unique_ptr<CatalogStore>(std::make_unique<SqliteCatalogStore>(std::move(db)));
}

}  // namespace plyr::streamer
