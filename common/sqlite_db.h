// SqliteDb: a thin RAII layer over one SQLite connection in WAL mode.
//
// The connection is opened in serialized mode and guarded by its own mutex, so a SqliteDb may be
// used from any thread; statements are prepared per call (SQLite caches the schema, and the
// callers here are not on a hot path: hot data is cached in memory by the services).
// Errors carry SQLite's message; nothing throws.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/system/result.hpp>

struct sqlite3;
struct sqlite3_stmt;

namespace plyr {

// A value bound to or read from a statement.
using SqlValue = std::variant<std::nullptr_t, std::int64_t, std::string>;

class SqlRow {
 public:
  explicit SqlRow(sqlite3_stmt* stmt) : stmt_(stmt) {}
  std::int64_t Int(int column) const;
  std::string Text(int column) const;
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

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  bool RunLocked(std::string_view sql, const std::vector<SqlValue>& params,
                 const std::function<void(const SqlRow&)>& on_row);
  sqlite3* db_;
  mutable std::recursive_mutex mutex_;
  std::string last_error_;
};

}  // namespace plyr
