#include "streamer/catalog.h"

#include <algorithm>
#include <mutex>

#include "common/migrations.h"

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

// Version 1 is the schema of the builds before migrations (IF NOT EXISTS: adopted as it is).
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
     ""},
};

}  // namespace

std::span<const Migration> CatalogMigrations() { return kMigrations; }

StatusOr<std::unique_ptr<Catalog>> Catalog::Open(std::unique_ptr<SqliteDb> db) {
  std::unique_ptr<Catalog> catalog(new Catalog(std::move(db)));
  if (auto migrated = Migrate(*catalog->db_, kCatalogStoreName, kMigrations); !migrated.ok()) {
    return Status(migrated.status().code(), "catalog schema: " + migrated.status().message());
  }
  if (Status loaded = catalog->Load(); !loaded.ok()) {
    return Status(loaded.code(), "catalog load: " + loaded.message());
  }
  return catalog;
}

Status Catalog::Load() {
  std::unique_lock lock(mutex_);
  Status read = db_->Run("SELECT file_id, size, content_type FROM files", {}, [&](const SqlRow& row) {
    files_[row.Text(0)] = FileRecord{row.Text(0), static_cast<std::uint64_t>(row.Int(1)), row.Text(2)};
  });
  if (!read.ok()) return read;
  std::unordered_map<std::string, Track> loaded;
  read = db_->Run("SELECT file_id, owner_did, gate, content_type FROM tracks", {}, [&](const SqlRow& row) {
    Track t;
    t.file_id = row.Text(0);
    t.owner_did = row.Text(1);
    t.gate = ParseGate(row.Text(2)).value_or(Gate::kSupporters);  // unknown gate: fail closed
    t.content_type = row.Text(3);
    loaded[t.file_id] = std::move(t);
  });
  if (read.ok()) {
    read = db_->Run("SELECT track_file_id, name, file_id, content_type FROM renditions", {}, [&](const SqlRow& row) {
      auto it = loaded.find(row.Text(0));
      if (it != loaded.end()) it->second.renditions[row.Text(1)] = Rendition{row.Text(2), row.Text(3)};
    });
  }
  for (auto& [id, track] : loaded) {
    IndexLocked(track);
    tracks_[id] = std::make_shared<const Track>(std::move(track));
  }
  return read;
}

void Catalog::IndexLocked(const Track& track) {
  for (const auto& [name, r] : track.renditions) rendition_owner_[r.file_id] = track.file_id;
}

void Catalog::UnindexLocked(const std::string& file_id) {
  auto it = tracks_.find(file_id);
  if (it == tracks_.end()) return;
  for (const auto& [name, r] : it->second->renditions) {
    auto owner = rendition_owner_.find(r.file_id);
    if (owner != rendition_owner_.end() && owner->second == file_id) rendition_owner_.erase(owner);
  }
}

std::shared_ptr<const Track> Catalog::FindTrack(std::string_view file_id) const {
  std::shared_lock lock(mutex_);
  auto it = tracks_.find(std::string(file_id));
  return it == tracks_.end() ? nullptr : it->second;
}

std::shared_ptr<const Track> Catalog::FindByAnyFileId(std::string_view file_id) const {
  std::shared_lock lock(mutex_);
  const std::string key(file_id);
  if (auto it = tracks_.find(key); it != tracks_.end()) return it->second;
  if (auto owner = rendition_owner_.find(key); owner != rendition_owner_.end()) {
    if (auto it = tracks_.find(owner->second); it != tracks_.end()) return it->second;
  }
  return nullptr;
}

std::optional<FileRecord> Catalog::FindFile(std::string_view file_id) const {
  std::shared_lock lock(mutex_);
  auto it = files_.find(std::string(file_id));
  if (it == files_.end()) return std::nullopt;
  return it->second;
}

Status Catalog::PutFile(const FileRecord& file) {
  std::lock_guard writer(write_mutex_);
  Status inserted = db_->Run("INSERT INTO files (file_id, size, content_type) VALUES (?1, ?2, ?3) "
                             "ON CONFLICT(file_id) DO NOTHING",
                             {file.file_id, static_cast<std::int64_t>(file.size), file.content_type});
  if (!inserted.ok()) return inserted;
  std::unique_lock lock(mutex_);
  files_.try_emplace(file.file_id, file);
  return OkStatus();
}

Status Catalog::PutTrack(const Track& track) {
  std::lock_guard writer(write_mutex_);
  {
    // Content-addressed ids: the same bytes uploaded twice are one file, and an artist's two
    // uploads of one recording share their renditions. Another owner's file is refused: it would
    // be served under this track's gate.
    std::shared_lock lock(mutex_);
    auto other_owner = [&](const std::string& file_id) -> std::string {
      std::string holder;
      if (auto it = tracks_.find(file_id); it != tracks_.end() && file_id != track.file_id) {
        holder = file_id;
      } else if (auto owner = rendition_owner_.find(file_id);
                 owner != rendition_owner_.end() && owner->second != track.file_id) {
        holder = owner->second;
      }
      if (holder.empty()) return {};
      auto it = tracks_.find(holder);
      return it != tracks_.end() && it->second->owner_did != track.owner_did ? holder : std::string();
    };
    if (auto holder = other_owner(track.file_id); !holder.empty()) {
      return Status(StatusCode::kFailedPrecondition,
                    "the file is a rendition of track " + holder + " of another owner");
    }
    for (const auto& [name, r] : track.renditions) {
      if (auto holder = other_owner(r.file_id); !holder.empty()) {
        return Status(StatusCode::kFailedPrecondition,
                      "rendition '" + name + "' names a file of track " + holder + " of another owner");
      }
    }
  }
  const Status written = db_->Transaction([&] {
    Status s = db_->Run("INSERT INTO tracks (file_id, owner_did, gate, content_type) VALUES (?1, ?2, ?3, ?4) "
                        "ON CONFLICT(file_id) DO UPDATE SET owner_did = excluded.owner_did, gate = excluded.gate, "
                        "content_type = excluded.content_type, updated_at = unixepoch()",
                        {track.file_id, track.owner_did, std::string(GateName(track.gate)), track.content_type});
    if (!s.ok()) return s;
    s = db_->Run("DELETE FROM renditions WHERE track_file_id = ?1", {track.file_id});
    if (!s.ok()) return s;
    for (const auto& [name, r] : track.renditions) {
      s = db_->Run("INSERT INTO renditions (track_file_id, name, file_id, content_type) VALUES (?1, ?2, ?3, ?4)",
                   {track.file_id, name, r.file_id, r.content_type});
      if (!s.ok()) return s;
    }
    return s;
  });
  if (!written.ok()) return Status(written.code(), "catalog write failed: " + written.message());
  auto snapshot = std::make_shared<const Track>(track);
  std::unique_lock lock(mutex_);
  UnindexLocked(track.file_id);
  tracks_[track.file_id] = std::move(snapshot);
  IndexLocked(track);
  return OkStatus();
}

Status Catalog::RemoveTrack(std::string_view file_id, bool* existed) {
  std::lock_guard writer(write_mutex_);
  const std::string key(file_id);
  {
    std::shared_lock lock(mutex_);
    *existed = tracks_.contains(key);
  }
  if (!*existed) return OkStatus();
  if (Status deleted = db_->Run("DELETE FROM tracks WHERE file_id = ?1", {key}); !deleted.ok()) return deleted;
  std::unique_lock lock(mutex_);
  UnindexLocked(key);
  tracks_.erase(key);
  return OkStatus();
}

std::vector<std::string> Catalog::TracksNaming(std::string_view file_id) const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> ids;
  for (const auto& [id, track] : tracks_) {
    bool names = id == file_id;
    for (const auto& [name, r] : track->renditions) names = names || r.file_id == file_id;
    if (names) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::unordered_map<std::string, std::vector<std::string>> Catalog::TracksNamingEachFile() const {
  std::unordered_map<std::string, std::vector<std::string>> naming;
  {
    std::shared_lock lock(mutex_);
    for (const auto& [id, track] : tracks_) {
      naming[id].push_back(id);
      for (const auto& [name, r] : track->renditions) {
        auto& tracks = naming[r.file_id];
        if (tracks.empty() || tracks.back() != id) tracks.push_back(id);
      }
    }
  }
  for (auto& [file, tracks] : naming) {
    std::sort(tracks.begin(), tracks.end());
    tracks.erase(std::unique(tracks.begin(), tracks.end()), tracks.end());
  }
  return naming;
}

std::vector<FileRecord> Catalog::ListFiles(std::string_view after, std::size_t limit) const {
  std::shared_lock lock(mutex_);
  std::vector<FileRecord> files;
  for (const auto& [id, file] : files_) {
    if (id > after) files.push_back(file);
  }
  std::sort(files.begin(), files.end(), [](const FileRecord& a, const FileRecord& b) { return a.file_id < b.file_id; });
  if (files.size() > limit) files.resize(limit);
  return files;
}

Status Catalog::RemoveFile(std::string_view file_id, FileRemoval* removal) {
  std::lock_guard writer(write_mutex_);
  const std::string key(file_id);
  // What changes, worked out from the mirror (writers are serialised, so it is current).
  std::vector<std::string> doomed;
  std::vector<Track> trimmed;
  {
    std::shared_lock lock(mutex_);
    for (const auto& [id, track] : tracks_) {
      if (id == key) {
        doomed.push_back(id);
        continue;
      }
      Track copy = *track;
      bool changed = false;
      for (auto it = copy.renditions.begin(); it != copy.renditions.end();) {
        if (it->second.file_id == key) {
          removal->renditions_removed.push_back(id + "/" + it->first);
          it = copy.renditions.erase(it);
          changed = true;
        } else {
          ++it;
        }
      }
      if (changed) trimmed.push_back(std::move(copy));
    }
  }
  const Status removed = db_->Transaction([&] {
    for (const auto& id : doomed) {
      if (Status s = db_->Run("DELETE FROM tracks WHERE file_id = ?1", {id}); !s.ok()) return s;
    }
    if (Status s = db_->Run("DELETE FROM renditions WHERE file_id = ?1", {key}); !s.ok()) return s;
    return db_->Run("DELETE FROM files WHERE file_id = ?1", {key});
  });
  if (!removed.ok()) return removed;
  std::unique_lock lock(mutex_);
  for (const auto& id : doomed) {
    UnindexLocked(id);
    tracks_.erase(id);
  }
  for (auto& track : trimmed) {
    UnindexLocked(track.file_id);
    IndexLocked(track);
    tracks_[track.file_id] = std::make_shared<const Track>(std::move(track));
  }
  files_.erase(key);
  removal->tracks_removed = std::move(doomed);
  std::sort(removal->renditions_removed.begin(), removal->renditions_removed.end());
  return OkStatus();
}

}  // namespace plyr::streamer
