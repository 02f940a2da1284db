#include "common/migrations.h"

#include <string>
#include <vector>

#include "common/pg_db.h"
#include "common/sqlite_db.h"

namespace plyr {

namespace {

constexpr std::string_view kCreateTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations (store TEXT PRIMARY KEY, version INTEGER NOT NULL)";

// The statements of a migration's script, split at ';', blank ones dropped.
std::vector<std::string> Statements(std::string_view script) {
  std::vector<std::string> out;
  while (!script.empty()) {
    const auto end = script.find(';');
    std::string_view statement = script.substr(0, end);
    script = end == std::string_view::npos ? std::string_view() : script.substr(end + 1);
    while (!statement.empty() && (statement.front() == ' ' || statement.front() == '\n')) statement.remove_prefix(1);
    if (!statement.empty()) out.emplace_back(statement);
  }
  return out;
}

Status Named(const Status& failed, std::string_view store, int version, std::string_view description) {
  return Status(failed.code(), std::string(store) + " schema version " + std::to_string(version) + " (" +
                                   std::string(description) + "): " + failed.message());
}

Status TooNew(std::string_view store, int version, std::size_t known) {
  return Status(StatusCode::kFailedPrecondition,
                std::string(store) + " schema is at version " + std::to_string(version) + ", newer than this build's " +
                    std::to_string(known) + ": run the newer plyr-core, or restore a backup of the older database");
}

}  // namespace

StatusOr<int> SchemaVersion(SqliteDb& db, std::string_view store) {
  if (Status created = db.Run(kCreateTable); !created.ok()) return created;
  int version = 0;
  Status read = db.Run("SELECT version FROM schema_migrations WHERE store = ?1", {std::string(store)},
                       [&](const SqlRow& row) { version = static_cast<int>(row.Int(0)); });
  if (!read.ok()) return read;
  return version;
}

StatusOr<int> SchemaVersion(PgDb& db, std::string_view store) {
  if (auto created = db.Exec(kCreateTable); !created.ok()) return created.status();
  auto read = db.Exec("SELECT version FROM schema_migrations WHERE store = $1", {std::string(store)});
  if (!read.ok()) return read.status();
  return read->rows() == 0 ? 0 : static_cast<int>(read->Int(0, 0));
}

StatusOr<int> Migrate(SqliteDb& db, std::string_view store, std::span<const Migration> migrations) {
  auto before = SchemaVersion(db, store);
  if (!before.ok()) return before.status();
  if (static_cast<std::size_t>(*before) > migrations.size()) return TooNew(store, *before, migrations.size());
  for (std::size_t i = static_cast<std::size_t>(*before); i < migrations.size(); ++i) {
    const int version = static_cast<int>(i + 1);
    const Migration& m = migrations[i];
    Status applied = db.Transaction([&] {
      for (const std::string& statement : Statements(m.sqlite)) {
        if (Status s = db.Run(statement); !s.ok()) return s;
      }
      return db.Run(
          "INSERT INTO schema_migrations (store, version) VALUES (?1, ?2) "
          "ON CONFLICT (store) DO UPDATE SET version = excluded.version",
          {std::string(store), static_cast<std::int64_t>(version)});
    });
    if (!applied.ok()) return Named(applied, store, version, m.description);
  }
  return *before;
}

StatusOr<int> Migrate(PgDb& db, std::string_view store, std::span<const Migration> migrations) {
  // One migration per transaction, each under an advisory lock that instances starting at once
  // share; the version is read again under the lock, since another instance may have moved it.
  // The table is created under the lock too: concurrent CREATE TABLE IF NOT EXISTS can collide.
  int before = -1;
  while (true) {
    bool done = false;
    Status step = db.Transaction([&](PgConnection& c) -> Status {
      if (auto locked = c.Exec("SELECT pg_advisory_xact_lock(hashtext('plyr-core schema_migrations'))");
          !locked.ok()) {
        return locked.status();
      }
      if (auto created = c.Exec(kCreateTable); !created.ok()) return created.status();
      auto read = c.Exec("SELECT version FROM schema_migrations WHERE store = $1", {std::string(store)});
      if (!read.ok()) return read.status();
      const int current = read->rows() == 0 ? 0 : static_cast<int>(read->Int(0, 0));
      if (before < 0) before = current;
      if (static_cast<std::size_t>(current) > migrations.size()) return TooNew(store, current, migrations.size());
      if (static_cast<std::size_t>(current) == migrations.size()) {
        done = true;
        return OkStatus();
      }
      const int version = current + 1;
      const Migration& m = migrations[static_cast<std::size_t>(current)];
      if (m.postgres.empty()) {
        return Status(StatusCode::kUnimplemented,
                      std::string(store) + " has no PostgreSQL schema yet (version " + std::to_string(version) + ")");
      }
      for (const std::string& statement : Statements(m.postgres)) {
        if (auto s = c.Exec(statement); !s.ok()) return Named(s.status(), store, version, m.description);
      }
      return c.Exec(
                  "INSERT INTO schema_migrations (store, version) VALUES ($1, $2) "
                  "ON CONFLICT (store) DO UPDATE SET version = excluded.version",
                  {std::string(store), std::to_string(version)})
          .status();
    });
    if (!step.ok()) return step;
    if (done) return before;
  }
}

}  // namespace plyr
