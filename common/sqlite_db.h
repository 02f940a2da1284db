// SqliteDb: a thin RAII layer over one SQLite connection in WAL mode.
//
// The connection is opened in serialized mode and guarded by its own mutex, so a SqliteDb may be
// used from any thread. Prepared statements are cached by their SQL text, so a statement run in a
// loop is compiled once. Nothing throws: failures come back as a Status whose message is SQLite's
// (sqlite3_errmsg) and whose code says what kind of failure it was:
//   Unavailable        the database is busy or locked by another connection (retrying may help)
//   ResourceExhausted  the disk or the database is full (ENOSPC, or a write refused with EFBIG or
//                      EDQUOT: a file size limit or a quota)
//   DataLoss           the file is corrupt or not a SQLite database
//   Internal           anything else: a bad statement, a broken constraint, an I/O error
// Callers usually put their own prefix on the message ("job database: ...").
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace plyr {

// Bytes bound as a BLOB (a plain std::string binds as TEXT).
struct SqlBlob {
  std::string_view bytes;
};

// A value bound to a statement.
using SqlValue = std::variant<std::nullptr_t, std::int64_t, std::string, SqlBlob>;

class SqlRow {
 public:
  explicit SqlRow(sqlite3_stmt* stmt) : stmt_(stmt) {}
  std::int64_t Int(int column) const;
  std::string Text(int column) const;
  // The bytes of a BLOB (or TEXT) column; valid until the next row.
  std::string_view Bytes(int column) const;
  bool IsNull(int column) const;

 private:
  sqlite3_stmt* stmt_;
};

class SqliteDb {
 public:
  // Opens (creating) the database at `path` with WAL journaling and synchronous=FULL, so a
  // committed transaction survives a crash of the process or the machine. Fails as above (a file
  // that is not a database fails here, with DataLoss, when the journal mode is set).
  static StatusOr<std::unique_ptr<SqliteDb>> Open(const std::filesystem::path& path);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one statement with positional parameters (?1, ?2, ...); calls `on_row` for each row.
  // A failure part-way leaves the rows already passed to `on_row` with the caller.
  Status Run(std::string_view sql, const std::vector<SqlValue>& params = {},
             const std::function<void(const SqlRow&)>& on_row = {});
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT. The body returns a Status, usually the failed
  // Run's passed straight on; a non-OK one rolls the transaction back and is returned unchanged.
  // A BEGIN or COMMIT that fails returns its own Status (after a rollback).
  Status Transaction(const std::function<Status()>& body);
  // The rowid of the last INSERT on this connection (call inside the same Transaction body).
  std::int64_t last_insert_rowid() const;

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  Status RunLocked(std::string_view sql, const std::vector<SqlValue>& params,
                   const std::function<void(const SqlRow&)>& on_row);
  // Null on failure, with the connection's error set (see Failure).
  sqlite3_stmt* Prepare(std::string_view sql);
  // The connection's current error message with the code for SQLite's result code `rc`.
  Status Failure(int rc) const;
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;  // guarded by mutex_
  mutable std::recursive_mutex mutex_;
};

}  // namespace plyr
