// The catalog on PostgreSQL, shared by every streamer instance. Writers take one advisory lock
// per transaction, so the owner check and the write it guards see no other instance's write in
// between (catalog writes are uploads and track edits: rare next to plays, which never reach the
// database). Each write announces the entities it touched on kCatalogChannel with its commit.
#include <algorithm>

#include "streamer/catalog_store.h"

namespace plyr::streamer {

namespace {

constexpr std::string_view kLockWriters = "SELECT pg_advisory_xact_lock(hashtext('plyr-core streamer catalog'))";

constexpr std::string_view kOtherOwnersTrack =
    "SELECT file_id FROM streamer_tracks WHERE file_id = $1 AND file_id <> $2 AND owner_did <> $3 "
    "UNION ALL "
    "SELECT r.track_file_id FROM streamer_renditions r JOIN streamer_tracks t ON t.file_id = r.track_file_id "
    "WHERE r.file_id = $1 AND r.track_file_id <> $2 AND t.owner_did <> $3 LIMIT 1";

Track TrackOf(const PgResult& rows, int i) {
  Track t;
  t.file_id = rows.Text(i, 0);
  t.owner_did = rows.Text(i, 1);
  t.gate = ParseGate(rows.Text(i, 2)).value_or(Gate::kSupporters);  // unknown gate: fail closed
  t.content_type = rows.Text(i, 3);
  return t;
}

FileRecord FileOf(const PgResult& rows, int i) {
  return FileRecord{std::string(rows.Text(i, 0)), static_cast<std::uint64_t>(rows.Int(i, 1)),
                    std::string(rows.Text(i, 2))};
}

// Announces `kind` ("track", "file") `file_id` when the transaction commits.
Status Announce(PgConnection& c, std::string_view kind, const std::string& file_id) {
  auto sent = c.Exec("SELECT pg_notify($1, $2)", {std::string(kCatalogChannel), std::string(kind) + " " + file_id});
  return sent.ok() ? OkStatus() : sent.status();
}

class PgCatalogStore final : public CatalogStore {
 public:
  explicit PgCatalogStore(std::shared_ptr<PgDb> db) : db_(std::move(db)) {}

  Status LoadAll(std::vector<FileRecord>* files, std::vector<Track>* tracks) override {
    // One snapshot of the three tables.
    return db_->Transaction([&](PgConnection& c) -> Status {
      if (auto iso = c.Exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"); !iso.ok()) return iso.status();
      auto file_rows = c.Exec("SELECT file_id, size, content_type FROM streamer_files");
      if (!file_rows.ok()) return file_rows.status();
      for (int i = 0; i < file_rows->rows(); ++i) files->push_back(FileOf(*file_rows, i));
      auto track_rows = c.Exec("SELECT file_id, owner_did, gate, content_type FROM streamer_tracks");
      if (!track_rows.ok()) return track_rows.status();
      std::map<std::string, Track> loaded;
      for (int i = 0; i < track_rows->rows(); ++i) {
        Track t = TrackOf(*track_rows, i);
        loaded.emplace(t.file_id, std::move(t));
      }
      auto rendition_rows = c.Exec("SELECT track_file_id, name, file_id, content_type FROM streamer_renditions");
      if (!rendition_rows.ok()) return rendition_rows.status();
      for (int i = 0; i < rendition_rows->rows(); ++i) {
        if (auto it = loaded.find(std::string(rendition_rows->Text(i, 0))); it != loaded.end()) {
          it->second.renditions[std::string(rendition_rows->Text(i, 1))] =
              Rendition{std::string(rendition_rows->Text(i, 2)), std::string(rendition_rows->Text(i, 3))};
        }
      }
      for (auto& [id, track] : loaded) tracks->push_back(std::move(track));
      return OkStatus();
    });
  }

  StatusOr<std::optional<Track>> LoadTrack(const std::string& file_id) override {
    std::optional<Track> track;
    Status read = db_->Transaction([&](PgConnection& c) -> Status {
      track.reset();
      auto rows = c.Exec("SELECT file_id, owner_did, gate, content_type FROM streamer_tracks WHERE file_id = $1",
                         {file_id});
      if (!rows.ok()) return rows.status();
      if (rows->rows() == 0) return OkStatus();
      track = TrackOf(*rows, 0);
      auto renditions =
          c.Exec("SELECT name, file_id, content_type FROM streamer_renditions WHERE track_file_id = $1", {file_id});
      if (!renditions.ok()) return renditions.status();
      for (int i = 0; i < renditions->rows(); ++i) {
        track->renditions[std::string(renditions->Text(i, 0))] =
            Rendition{std::string(renditions->Text(i, 1)), std::string(renditions->Text(i, 2))};
      }
      return OkStatus();
    });
    if (!read.ok()) return read;
    return track;
  }

  StatusOr<std::optional<FileRecord>> LoadFile(const std::string& file_id) override {
    auto rows = db_->Exec("SELECT file_id, size, content_type FROM streamer_files WHERE file_id = $1", {file_id});
    if (!rows.ok()) return rows.status();
    if (rows->rows() == 0) return std::optional<FileRecord>();
    return std::optional<FileRecord>(FileOf(*rows, 0));
  }

  Status PutFile(const FileRecord& file) override {
    return db_->Transaction([&](PgConnection& c) -> Status {
      auto added = c.Exec("INSERT INTO streamer_files (file_id, size, content_type) VALUES ($1, $2, $3) "
                          "ON CONFLICT (file_id) DO NOTHING",
                          {file.file_id, std::to_string(file.size), file.content_type});
      if (!added.ok()) return added.status();
      return added->affected() > 0 ? Announce(c, "file", file.file_id) : OkStatus();
    });
  }

  Status PutTrack(const Track& track) override {
    return db_->Transaction([&](PgConnection& c) -> Status {
      if (auto locked = c.Exec(kLockWriters); !locked.ok()) return locked.status();
      auto holder_of = [&](const std::string& file_id) -> StatusOr<std::string> {
        auto rows = c.Exec(kOtherOwnersTrack, {file_id, track.file_id, track.owner_did});
        if (!rows.ok()) return rows.status();
        return rows->rows() == 0 ? std::string() : std::string(rows->Text(0, 0));
      };
      auto holder = holder_of(track.file_id);
      if (!holder.ok()) return holder.status();
      if (!holder->empty()) return OwnTrackConflict(*holder);
      for (const auto& [name, r] : track.renditions) {
        holder = holder_of(r.file_id);
        if (!holder.ok()) return holder.status();
        if (!holder->empty()) return RenditionConflict(name, *holder);
      }
      auto s = c.Exec("INSERT INTO streamer_tracks (file_id, owner_did, gate, content_type) VALUES ($1, $2, $3, $4) "
                      "ON CONFLICT (file_id) DO UPDATE SET owner_did = excluded.owner_did, gate = excluded.gate, "
                      "content_type = excluded.content_type, updated_at = extract(epoch FROM now())::bigint",
                      {track.file_id, track.owner_did, std::string(GateName(track.gate)), track.content_type});
      if (!s.ok()) return s.status();
      s = c.Exec("DELETE FROM streamer_renditions WHERE track_file_id = $1", {track.file_id});
      if (!s.ok()) return s.status();
      for (const auto& [name, r] : track.renditions) {
        s = c.Exec("INSERT INTO streamer_renditions (track_file_id, name, file_id, content_type) VALUES ($1, $2, $3, $4)",
                   {track.file_id, name, r.file_id, r.content_type});
        if (!s.ok()) return s.status();
      }
      return Announce(c, "track", track.file_id);
    });
  }

  StatusOr<bool> RemoveTrack(const std::string& file_id) override {
    bool existed = false;
    Status removed = db_->Transaction([&](PgConnection& c) -> Status {
      if (auto locked = c.Exec(kLockWriters); !locked.ok()) return locked.status();
      auto renditions = c.Exec("DELETE FROM streamer_renditions WHERE track_file_id = $1", {file_id});
      if (!renditions.ok()) return renditions.status();
      auto deleted = c.Exec("DELETE FROM streamer_tracks WHERE file_id = $1", {file_id});
      if (!deleted.ok()) return deleted.status();
      existed = deleted->affected() > 0;
      return existed ? Announce(c, "track", file_id) : OkStatus();
    });
    if (!removed.ok()) return removed;
    return existed;
  }

  StatusOr<FileRemoval> RemoveFile(const std::string& file_id) override {
    FileRemoval removal;
    Status removed = db_->Transaction([&](PgConnection& c) -> Status {
      removal = {};
      if (auto locked = c.Exec(kLockWriters); !locked.ok()) return locked.status();
      auto doomed = c.Exec("SELECT file_id FROM streamer_tracks WHERE file_id = $1", {file_id});
      if (!doomed.ok()) return doomed.status();
      for (int i = 0; i < doomed->rows(); ++i) removal.tracks_removed.emplace_back(doomed->Text(i, 0));
      auto trimmed = c.Exec("SELECT track_file_id, name FROM streamer_renditions WHERE file_id = $1 AND track_file_id <> $1",
                            {file_id});
      if (!trimmed.ok()) return trimmed.status();
      for (int i = 0; i < trimmed->rows(); ++i) {
        removal.renditions_removed.push_back(std::string(trimmed->Text(i, 0)) + "/" + std::string(trimmed->Text(i, 1)));
        if (Status s = Announce(c, "track", std::string(trimmed->Text(i, 0))); !s.ok()) return s;
      }
      for (const char* sql : {"DELETE FROM streamer_renditions WHERE track_file_id = $1",
                              "DELETE FROM streamer_tracks WHERE file_id = $1",
                              "DELETE FROM streamer_renditions WHERE file_id = $1",
                              "DELETE FROM streamer_files WHERE file_id = $1"}) {
        if (auto s = c.Exec(sql, {file_id}); !s.ok()) return s.status();
      }
      if (!removal.tracks_removed.empty()) {
        if (Status s = Announce(c, "track", file_id); !s.ok()) return s;
      }
      return Announce(c, "file", file_id);
    });
    if (!removed.ok()) return removed;
    std::sort(removal.renditions_removed.begin(), removal.renditions_removed.end());
    return removal;
  }

  std::string_view engine() const override { return "PostgreSQL"; }

 private:
  std::shared_ptr<PgDb> db_;
};

}  // namespace

StatusOr<std::unique_ptr<CatalogStore>> OpenPgCatalogStore(std::shared_ptr<PgDb> db) {
  if (auto migrated = Migrate(*db, kCatalogStoreName, CatalogMigrations()); !migrated.ok()) {
    return Status(migrated.status().code(), "catalog schema: " + migrated.status().message());
  }
  return std::unique_ptr<CatalogStore>(std::make_unique<PgCatalogStore>(std::move(db)));
}

}  // namespace plyr::streamer
