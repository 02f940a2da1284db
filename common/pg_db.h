// PgDb: a bounded pool of PostgreSQL connections (libpq), for the stores that run on PostgreSQL
// when `database.url` names one. SQLite's counterpart is SqliteDb.
//
// Calls block on the network: make them from worker threads (RunBlocking), never from the I/O
// threads. Thread-safe: each call takes a free connection (waiting, bounded, when all are busy)
// and gives it back. A connection the server closed while it sat idle (a restart) is
// re-established before its next use; one that breaks during a statement fails that statement
// (Unavailable: it may or may not have run) and is re-established on the next.
//
// Statements take text parameters ($1, $2, …; std::nullopt is NULL) and return text values.
// Failures, by SQLSTATE: AlreadyExists for a unique violation (23505); Unavailable when the
// server cannot be reached, shuts down, or a transaction lost a serialization or deadlock
// conflict (08…, 57P…, 40001, 40P01: retrying may help); ResourceExhausted for a full disk or
// too many connections (53…); InvalidArgument for a malformed URL; Internal for the rest. The
// message carries the server's own words.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/sqlite_db.h"
#include "common/status.h"

struct pg_conn;
struct pg_result;

namespace plyr {

// The rows of a statement's answer. Move-only.
class PgResult {
 public:
  PgResult() = default;
  int rows() const;
  int columns() const;
  bool IsNull(int row, int column) const;
  // The text of a value ("" for NULL: check IsNull where it matters).
  std::string_view Text(int row, int column) const;
  // The value as a number; 0 for NULL or text that is not one.
  std::int64_t Int(int row, int column) const;
  // The bytes of a BYTEA value (sent as text in hex form: "\x0a1b…").
  std::string Bytes(int row, int column) const;
  // Rows a command changed (INSERT, UPDATE, DELETE).
  std::int64_t affected() const { return affected_; }

 private:
  friend class PgConnection;
  struct Deleter {
    void operator()(pg_result* result) const;
  };
  std::unique_ptr<pg_result, Deleter> result_;
  std::int64_t affected_ = 0;
};

using PgParams = std::vector<std::optional<std::string>>;

// `bytes` as a BYTEA parameter's text ("\x" and two hex digits a byte).
std::string PgBytea(std::string_view bytes);

// Values bound the way SqliteDb takes them, as PostgreSQL's text parameters (a store that
// writes one statement for both engines): numbers in decimal, blobs as BYTEA, null as null.
PgParams PgTextParams(const std::vector<SqlValue>& values);

// One connection, lent by PgDb for one call or one transaction. Not thread-safe.
class PgConnection {
 public:
  StatusOr<PgResult> Exec(std::string_view sql, const PgParams& params = {});

 private:
  friend class PgDb;
  struct Deleter {
    void operator()(pg_conn* conn) const;
  };
  std::unique_ptr<pg_conn, Deleter> conn_;
};

class PgDb {
 public:
  // Connects `connections` (1-64) sessions to `url` ("postgres://user:password@host:port/db"
  // or "postgresql://…", libpq's own forms too), each with `statement_timeout`.
  static StatusOr<std::unique_ptr<PgDb>> Open(const std::string& url, int connections,
                                              std::chrono::milliseconds statement_timeout = std::chrono::seconds(30));
  ~PgDb();
  PgDb(const PgDb&) = delete;
  PgDb& operator=(const PgDb&) = delete;

  // One statement on a free connection (autocommit).
  StatusOr<PgResult> Exec(std::string_view sql, const PgParams& params = {});
  // `work` inside BEGIN … COMMIT on one connection; ROLLBACK when it fails (its Status is
  // returned) or the commit fails.
  Status Transaction(const std::function<Status(PgConnection&)>& work);

  int size() const { return static_cast<int>(pool_.size()); }

 private:
  PgDb() = default;
  // Waits for a free connection (up to the statement timeout), re-establishing it if broken.
  StatusOr<PgConnection*> Acquire();
  void Release(PgConnection* connection);

  std::string url_;
  std::chrono::milliseconds statement_timeout_{0};
  std::vector<std::unique_ptr<PgConnection>> pool_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<PgConnection*> free_;  // guarded by mutex_
};

}  // namespace plyr
