// SqliteDb: a thin RAII layer over one SQLite connection in WAL mode.
//
// The connection is opened in serialized mode and guarded by its own mutex, so a SqliteDb may be
// used from any thread. Prepared statements are cached by their SQL text, so a statement run in a
// loop is compiled once. Errors carry SQLite's message; nothing throws.
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

#include <boost/system/result.hpp>

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
  // committed transaction survives a crash of the process or the machine.
  static boost::system::result<std::unique_ptr<SqliteDb>> Open(const std::filesystem::path& path,
                                                               std::string* error);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one statement with positional parameters (?1, ?2, ...); calls `on_row` for each row.
  // Returns false and sets last_error() on failure.
  bool Run(std::string_view sql, const std::vector<SqlValue>& params = {},
           const std::function<void(const SqlRow&)>& on_row = {});
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back when it returns false.
  bool Transaction(const std::function<bool()>& body);
  std::string last_error() const;
  // The rowid of the last INSERT on this connection (call inside the same Transaction body).
  std::int64_t last_insert_rowid() const;

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  bool RunLocked(std::string_view sql, const std::vector<SqlValue>& params,
                 const std::function<void(const SqlRow&)>& on_row);
  sqlite3_stmt* Prepare(std::string_view sql);
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;  // guarded by mutex_
  mutable std::recursive_mutex mutex_;
  std::string last_error_;
};

}  // namespace plyr
