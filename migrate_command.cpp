#include "migrate_command.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "common/blob_store.h"
#include "common/http_client.h"
#include "common/migrations.h"
#include "common/object_store_settings.h"
#include "common/pg_db.h"
#include "common/s3_client.h"
#include "common/sqlite_db.h"
#include "fingerprint/reference_store.h"
#include "labeler/label_store.h"
#include "streamer/catalog_store.h"
#include "transcoder/job_store.h"

namespace plyr {

namespace {

namespace fs = std::filesystem;

struct MigrateSettings {
  std::string data_dir = "./data";
  std::string database_url;
  ObjectStoreSettings object_store;
  bool copy = false;
};

struct SqliteStore {
  std::string_view name;
  fs::path file;
  std::span<const Migration> migrations;
};

void Report(std::string_view name, std::string_view where, int before, std::size_t now) {
  std::cout << name << " (" << where << "): version " << before << " -> " << now << "\n";
}

// Runs `call(executor)` to its end on an io_context of its own (the command has no runtime).
template <typename T, typename Call>
T RunToEnd(Call call) {
  asio::io_context io;
  std::optional<T> result;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { result.emplace(co_await call(io.get_executor())); }, asio::detached);
  io.run();
  return result ? std::move(*result) : T(Status(StatusCode::kInternal, "the call did not finish"));
}

// --copy: the rows of the data folder's SQLite stores into the (empty) PostgreSQL stores.
Status CopyCatalog(const fs::path& data, const std::shared_ptr<PgDb>& pg) {
  const fs::path file = data / "streamer" / "catalog.db";
  if (!fs::exists(file)) return OkStatus();
  auto db = SqliteDb::Open(file);
  if (!db.ok()) return db.status();
  auto from = streamer::OpenSqliteCatalogStore(std::move(*db));
  if (!from.ok()) return from.status();
  auto to = streamer::OpenPgCatalogStore(pg);
  if (!to.ok()) return to.status();
  std::vector<streamer::FileRecord> files, present_files;
  std::vector<streamer::Track> tracks, present_tracks;
  if (Status s = (*from)->LoadAll(&files, &tracks); !s.ok()) return s;
  if (Status s = (*to)->LoadAll(&present_files, &present_tracks); !s.ok()) return s;
  if (!present_files.empty() || !present_tracks.empty()) {
    return Status(StatusCode::kFailedPrecondition, "the PostgreSQL catalog already holds " +
                                                       std::to_string(present_files.size()) + " files and " +
                                                       std::to_string(present_tracks.size()) +
                                                       " tracks: --copy fills an empty database only");
  }
  for (const auto& f : files) {
    if (Status s = (*to)->PutFile(f); !s.ok()) return s;
  }
  for (const auto& t : tracks) {
    if (Status s = (*to)->PutTrack(t); !s.ok()) return s;
  }
  std::cout << "streamer.catalog: copied " << files.size() << " files and " << tracks.size() << " tracks\n";
  return OkStatus();
}

Status CopyLabels(const fs::path& data, const std::shared_ptr<PgDb>& pg) {
  const fs::path file = data / "labeler" / "labels.db";
  if (!fs::exists(file)) return OkStatus();
  auto from = labeler::LabelStore::Open(file, labeler::LabelStoreOptions{});
  if (!from.ok()) return from.status();
  auto copied = labeler::LabelStore::CopyToPostgres(**from, *pg);
  if (!copied.ok()) return copied.status();
  std::cout << "labeler.labels: copied " << *copied << " labels (head seq " << (*from)->head_seq() << ")\n";
  return OkStatus();
}

Status CopyJobs(const fs::path& data, const std::shared_ptr<PgDb>& pg) {
  const fs::path file = data / "transcoder" / "jobs.db";
  if (!fs::exists(file)) return OkStatus();
  auto db = SqliteDb::Open(file);
  if (!db.ok()) return db.status();
  auto from = transcoder::JobStore::Open(std::move(*db));
  if (!from.ok()) return from.status();
  auto to = transcoder::JobStore::OpenPostgres(pg);
  if (!to.ok()) return to.status();
  auto present = (*to)->List(std::nullopt, 1);
  if (!present.ok()) return present.status();
  if (!present->empty()) {
    return Status(StatusCode::kFailedPrecondition, "the PostgreSQL job queue already holds jobs: --copy fills an empty "
                                                   "database only");
  }
  auto jobs = (*from)->List(std::nullopt, std::numeric_limits<std::int32_t>::max());
  if (!jobs.ok()) return jobs.status();
  std::reverse(jobs->begin(), jobs->end());  // oldest first: the queue keeps its order
  for (auto& job : *jobs) {
    if (job.state == transcoder::JobState::kRunning) job.state = transcoder::JobState::kQueued;  // runs again
    job.claim.clear();
    if (Status s = (*to)->Insert(job); !s.ok()) return s;
  }
  std::cout << "transcoder.jobs: copied " << jobs->size() << " jobs\n";
  return OkStatus();
}

Status CopyReferences(const fs::path& data, const std::shared_ptr<PgDb>& pg) {
  const fs::path file = data / "fingerprint" / "references.db";
  if (!fs::exists(file)) return OkStatus();
  auto db = SqliteDb::Open(file);
  if (!db.ok()) return db.status();
  auto from = fingerprint::OpenSqliteReferenceStore(std::move(*db));
  if (!from.ok()) return from.status();
  auto to = fingerprint::OpenPgReferenceStore(pg);
  if (!to.ok()) return to.status();
  auto present = (*to)->Rows();
  if (!present.ok()) return present.status();
  if (!present->empty()) {
    return Status(StatusCode::kFailedPrecondition, "the PostgreSQL references already hold " +
                                                       std::to_string(present->size()) +
                                                       " works: --copy fills an empty database only");
  }
  std::size_t copied = 0;
  Status inserted = OkStatus();
  Status read = (*from)->LoadAll(
      [&](std::vector<fingerprint::ReferenceRecord>&& batch) {
        if (!inserted.ok()) return;
        inserted = (*to)->InsertMany(batch);
        copied += batch.size();
      },
      256);
  if (!read.ok()) return read;
  if (!inserted.ok()) return inserted;
  std::cout << "fingerprint.references: copied " << copied << " works\n";
  return OkStatus();
}

// --copy with an object store: the streamer's blobs into the bucket, each one the store does
// not hold yet (with the same size) uploaded.
Status CopyBlobs(const fs::path& data, const S3Settings& settings, const std::string& prefix) {
  const fs::path root = data / "streamer" / "blobs";
  if (!fs::exists(root)) return OkStatus();
  HttpClient http;
  auto store = S3Client::Create(http, settings);
  if (!store.ok()) return store.status();
  std::size_t uploaded = 0, present = 0;
  std::error_code ec;
  for (const auto& shard : fs::directory_iterator(root, ec)) {
    if (!shard.is_directory() || shard.path().filename().string().size() != 2) continue;
    for (const auto& entry : fs::directory_iterator(shard.path(), ec)) {
      const std::string id = entry.path().filename().string();
      if (!BlobStore::IsValidId(id) || !entry.is_regular_file()) continue;
      const std::string key = prefix + "streamer/" + id;
      const std::uint64_t size = entry.file_size();
      auto head = RunToEnd<StatusOr<S3Object>>([&](asio::any_io_executor e) { return (*store)->Head(e, key); });
      if (head.ok() && head->size == size) {
        ++present;
        continue;
      }
      if (!head.ok() && head.status().code() != StatusCode::kNotFound) return head.status();
      const fs::path path = entry.path();
      Status put = RunToEnd<Status>([&](asio::any_io_executor e) {
        return (*store)->PutFileOfSize(e, key, path, size, "application/octet-stream");
      });
      if (!put.ok()) return Status(put.code(), "blob " + id + ": " + put.message());
      ++uploaded;
    }
  }
  std::cout << "streamer blobs: " << uploaded << " uploaded, " << present << " already in the bucket\n";
  return OkStatus();
}

int RunMigrate(const MigrateSettings& s) {
  const fs::path data = s.data_dir;
  std::vector<SqliteStore> sqlite;
  // Every store runs on PostgreSQL when database.url is set, else on SQLite in the data folder.
  std::vector<SqliteStore> shared = {
      {labeler::kLabelStoreName, data / "labeler" / "labels.db", labeler::LabelStoreMigrations()},
      {streamer::kCatalogStoreName, data / "streamer" / "catalog.db", streamer::CatalogMigrations()},
      {transcoder::kJobStoreName, data / "transcoder" / "jobs.db", transcoder::JobStoreMigrations()},
      {fingerprint::kReferenceStoreName, data / "fingerprint" / "references.db",
       fingerprint::ReferenceStoreMigrations()},
  };
  HttpClient http;
  auto object_store = CheckObjectStoreSettings(s.object_store, http);
  if (!object_store.ok()) {
    std::cerr << "plyr-core: " << object_store.status().message() << "\n";
    return 2;
  }
  if (s.copy && s.database_url.empty()) {
    std::cerr << "plyr-core: --copy moves the data folder's stores into PostgreSQL: give --database-url\n";
    return 2;
  }
  int failures = 0;
  std::shared_ptr<PgDb> pg;
  if (!s.database_url.empty()) {
    auto opened = PgDb::Open(s.database_url, 1);
    if (!opened.ok()) {
      std::cerr << "plyr-core: " << opened.status().message() << "\n";
      return opened.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
    }
    pg = std::move(*opened);
    for (const auto& store : shared) {
      auto migrated = Migrate(*pg, store.name, store.migrations);
      if (!migrated.ok()) {
        std::cerr << "plyr-core: " << store.name << ": " << migrated.status().message() << "\n";
        ++failures;
        continue;
      }
      Report(store.name, "PostgreSQL", *migrated, store.migrations.size());
    }
  }
  // On --copy the SQLite stores are brought up to date first, then read.
  if (pg == nullptr || s.copy) sqlite.insert(sqlite.begin(), shared.begin(), shared.end());
  for (const auto& store : sqlite) {
    std::error_code ec;
    if (s.copy && !fs::exists(store.file)) continue;
    fs::create_directories(store.file.parent_path(), ec);
    auto db = SqliteDb::Open(store.file);
    auto migrated = db.ok() ? Migrate(**db, store.name, store.migrations) : StatusOr<int>(db.status());
    if (!migrated.ok()) {
      std::cerr << "plyr-core: " << store.name << ": " << migrated.status().message() << "\n";
      ++failures;
      continue;
    }
    Report(store.name, store.file.string(), *migrated, store.migrations.size());
  }
  if (!s.copy || failures > 0) return failures == 0 ? 0 : 1;

  for (const auto& [what, copy] : std::vector<std::pair<std::string, std::function<Status()>>>{
           {"streamer.catalog", [&] { return CopyCatalog(data, pg); }},
           {"labeler.labels", [&] { return CopyLabels(data, pg); }},
           {"transcoder.jobs", [&] { return CopyJobs(data, pg); }},
           {"fingerprint.references", [&] { return CopyReferences(data, pg); }}}) {
    if (Status s = copy(); !s.ok()) {
      std::cerr << "plyr-core: copying " << what << ": " << s.message() << "\n";
      return 1;
    }
  }
  if (*object_store) {
    if (Status copied = CopyBlobs(data, **object_store, s.object_store.prefix); !copied.ok()) {
      std::cerr << "plyr-core: copying the streamer's blobs: " << copied.message() << "\n";
      return 1;
    }
  }
  std::cout << "copied\n";
  return 0;
}

}  // namespace

void AddMigrateCommand(CLI::App& app, const SettingsFile& file, std::function<int()>& action) {
  auto settings = std::make_shared<MigrateSettings>();
  CLI::App* migrate = app.add_subcommand(
      "migrate", "Bring every store to this build's schema (serve does it at start too), and report the versions");
  file.Bind(*migrate, "data", settings->data_dir, "Folder holding everything the process persists");
  file.BindSecret(*migrate, "database.url", settings->database_url,
                  "PostgreSQL URL for the stores that run on it; empty: SQLite in the data folder");
  BindObjectStoreSettings(*migrate, file, settings->object_store);
  migrate->add_flag("--copy", settings->copy,
                    "Copy the data folder's catalog, label log, jobs and references into the (empty) PostgreSQL "
                    "database, and "
                    "with storage.s3 the streamer's blobs into the bucket");
  migrate->callback([&action, settings] { action = [settings] { return RunMigrate(*settings); }; });
}

}  // namespace plyr
