// Versioned schema migrations of a store, on SQLite and on PostgreSQL.
//
// A store lists its migrations in order: the first is version 1. The version a database has
// reached is kept per store in `schema_migrations (store, version)`, so stores can share one
// database (PostgreSQL) or have one each (SQLite). Migrate applies, in order, each migration
// past the stored version, each in its own transaction together with the new version: a crash
// leaves the database at the last whole version. Instances starting at once on one PostgreSQL
// database take an advisory lock, so each migration runs once.
//
// Version 1 of a store that existed before migrations uses CREATE … IF NOT EXISTS, so a
// database made by an older build adopts version 1 as it is.
//
// Failures: FailedPrecondition when the database is at a version newer than this build knows
// (a downgrade); otherwise the failing statement's Status, with the store and version named.
#pragma once

#include <span>
#include <string_view>

#include "common/status.h"

namespace plyr {

class SqliteDb;
class PgDb;

struct Migration {
  std::string_view description;  // "create refs", "index refs by isrc"
  // The statements of each dialect, separated by ';' (no ';' inside a statement). An empty
  // `postgres`: the store does not run on PostgreSQL yet (Migrate refuses with Unimplemented).
  std::string_view sqlite;
  std::string_view postgres;
};

// The version `store` has reached in the database (0: none yet).
StatusOr<int> SchemaVersion(SqliteDb& db, std::string_view store);
StatusOr<int> SchemaVersion(PgDb& db, std::string_view store);

// Brings `store` to the last of `migrations`. Returns the version it was at before.
StatusOr<int> Migrate(SqliteDb& db, std::string_view store, std::span<const Migration> migrations);
StatusOr<int> Migrate(PgDb& db, std::string_view store, std::span<const Migration> migrations);

}  // namespace plyr
