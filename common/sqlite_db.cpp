#include "common/sqlite_db.h"

#include <sqlite3.h>

#include <cerrno>
#include <cstring>

namespace plyr {

namespace {

// The kind of failure an SQLite result code (primary or extended) stands for; see the header.
StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return StatusCode::kUnavailable;
    case SQLITE_FULL: return StatusCode::kResourceExhausted;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return StatusCode::kDataLoss;
    default: return StatusCode::kInternal;  // SQLITE_OK too: a failure without a code is still one
  }
}

// The errno of the last failed system call on the database's files: the main file's, else its
// write-ahead log's (sqlite3_system_errno is not kept for failed writes).
int LastFileErrno(sqlite3* db) {
  int error = 0;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO, &error) == SQLITE_OK && error != 0) return error;
  sqlite3_file* journal = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &journal) != SQLITE_OK || !journal ||
      !journal->pMethods) {
    return 0;
  }
  error = 0;
  return journal->pMethods->xFileControl(journal, SQLITE_FCNTL_LAST_ERRNO, &error) == SQLITE_OK ? error : 0;
}

}  // namespace

std::int64_t SqlRow::Int(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string SqlRow::Text(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  return text ? std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
}

std::string_view SqlRow::Bytes(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  return data ? std::string_view(static_cast<const char*>(data),
                                 static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
              : std::string_view();
}

bool SqlRow::IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::filesystem::path& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    Status failed(CodeFor(rc), raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    sqlite3_close(raw);
    return failed;
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw));
  sqlite3_busy_timeout(raw, 5000);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    if (Status set = db->Run(pragma); !set.ok()) return set;
  }
  return db;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

std::int64_t SqliteDb::last_insert_rowid() const {
  std::lock_guard lock(mutex_);
  return sqlite3_last_insert_rowid(db_);
}

sqlite3_stmt* SqliteDb::Prepare(std::string_view sql) {
  auto it = statements_.find(std::string(sql));
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt,
                         nullptr) != SQLITE_OK) {
    return nullptr;
  }
  // Transaction control and pragmas run rarely; everything else is worth keeping.
  if (stmt && statements_.size() < 256) statements_.emplace(std::string(sql), stmt);
  return stmt;
}

Status SqliteDb::Failure(int rc) const {
  // SQLite says SQLITE_FULL only when a write fails with ENOSPC; one refused with EFBIG (a file
  // size limit: systemd's LimitFSIZE=, ulimit -f) or EDQUOT (a quota) is a generic I/O error. All
  // three mean the disk is full to whoever has to act on it.
  if ((rc & 0xff) == SQLITE_IOERR) {
    const int os_error = LastFileErrno(db_);
    if (os_error == ENOSPC || os_error == EFBIG || os_error == EDQUOT) {
      return Status(StatusCode::kResourceExhausted,
                    std::string("disk full: ") + sqlite3_errmsg(db_) + " (" + std::strerror(os_error) + ")");
    }
  }
  return Status(CodeFor(rc), sqlite3_errmsg(db_));
}

Status SqliteDb::Run(std::string_view sql, const std::vector<SqlValue>& params,
                     const std::function<void(const SqlRow&)>& on_row) {
  std::lock_guard lock(mutex_);
  return RunLocked(sql, params, on_row);
}

Status SqliteDb::RunLocked(std::string_view sql, const std::vector<SqlValue>& params,
                           const std::function<void(const SqlRow&)>& on_row) {
  sqlite3_stmt* stmt = Prepare(sql);
  if (!stmt) return Failure(sqlite3_extended_errcode(db_));
  const bool cached = statements_.contains(std::string(sql));
  // Cached statements are reset for their next use; others are finalized.
  struct Release {
    sqlite3_stmt* stmt;
    bool cached;
    ~Release() {
      if (cached) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
      } else {
        sqlite3_finalize(stmt);
      }
    }
  } release{stmt, cached};
  for (std::size_t i = 0; i < params.size(); ++i) {
    const int index = static_cast<int>(i + 1);
    int rc = std::visit(
        [&](const auto& v) -> int {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::nullptr_t>) {
            return sqlite3_bind_null(stmt, index);
          } else if constexpr (std::is_same_v<T, std::int64_t>) {
            return sqlite3_bind_int64(stmt, index, v);
          } else if constexpr (std::is_same_v<T, SqlBlob>) {
            return sqlite3_bind_blob64(stmt, index, v.bytes.data(), v.bytes.size(), SQLITE_TRANSIENT);
          } else {
            return sqlite3_bind_text(stmt, index, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
          }
        },
        params[i]);
    if (rc != SQLITE_OK) return Failure(rc);
  }
  for (;;) {
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      if (on_row) on_row(SqlRow(stmt));
      continue;
    }
    if (rc == SQLITE_DONE) return OkStatus();
    return Failure(rc);
  }
}

Status SqliteDb::Transaction(const std::function<Status()>& body) {
  std::lock_guard lock(mutex_);
  if (Status begun = RunLocked("BEGIN IMMEDIATE", {}, {}); !begun.ok()) return begun;
  if (Status done = body(); !done.ok()) {
    (void)RunLocked("ROLLBACK", {}, {});  // the body's failure is the one worth reporting
    return done;
  }
  if (Status committed = RunLocked("COMMIT", {}, {}); !committed.ok()) {
    (void)RunLocked("ROLLBACK", {}, {});
    return committed;
  }
  return OkStatus();
}

}  // namespace plyr
