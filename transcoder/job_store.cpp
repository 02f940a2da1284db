// The job store on both engines: one set of statements, written for SQLite and adapted to
// PostgreSQL's dialect (numbered parameters, the table's name, FOR UPDATE SKIP LOCKED) by
// JobSql, the thin layer over each database.
#include "transcoder/job_store.h"

#include <algorithm>
#include <charconv>

namespace plyr::transcoder {

namespace {

// Version 1 is the schema of the builds before migrations (IF NOT EXISTS: adopted as it is).
// Version 2 adds the queue's claims and leases. On PostgreSQL, which other services' tables
// share, the table carries the service's name.
constexpr Migration kMigrations[] = {
    {"jobs",
     "CREATE TABLE IF NOT EXISTS jobs ("
     "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  id TEXT NOT NULL UNIQUE, state TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
     "  options TEXT NOT NULL, input TEXT NOT NULL, result TEXT, error TEXT,"
     "  attempts INTEGER NOT NULL DEFAULT 0, callback TEXT NOT NULL DEFAULT 'none',"
     "  callback_attempts INTEGER NOT NULL DEFAULT 0) STRICT;"
     "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq)",
     "CREATE TABLE transcoder_jobs ("
     "  seq BIGSERIAL PRIMARY KEY,"
     "  id TEXT NOT NULL UNIQUE, state TEXT NOT NULL, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,"
     "  options TEXT NOT NULL, input TEXT NOT NULL, result TEXT, error TEXT,"
     "  attempts INTEGER NOT NULL DEFAULT 0, callback TEXT NOT NULL DEFAULT 'none',"
     "  callback_attempts INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX transcoder_jobs_by_state ON transcoder_jobs(state, seq)"},
    {"claims and leases",
     "ALTER TABLE jobs ADD COLUMN claim TEXT;"
     "ALTER TABLE jobs ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN callback_at_ms INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX jobs_by_claim ON jobs(claim);"
     "CREATE INDEX jobs_by_callback ON jobs(callback, callback_at_ms)",
     "ALTER TABLE transcoder_jobs ADD COLUMN claim TEXT;"
     "ALTER TABLE transcoder_jobs ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0;"
     "ALTER TABLE transcoder_jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE transcoder_jobs ADD COLUMN callback_at_ms BIGINT NOT NULL DEFAULT 0;"
     "CREATE INDEX transcoder_jobs_by_claim ON transcoder_jobs(claim);"
     "CREATE INDEX transcoder_jobs_by_callback ON transcoder_jobs(callback, callback_at_ms)"},
};

constexpr std::string_view kColumns =
    "id, state, created_ms, updated_ms, options, input, result, error, attempts, callback, callback_attempts, "
    "callback_at_ms, claim";
constexpr int kColumnCount = 13;

std::string_view CallbackName(CallbackState state) {
  switch (state) {
    case CallbackState::kNone: return "none";
    case CallbackState::kPending: return "pending";
    case CallbackState::kDelivered: return "delivered";
    case CallbackState::kGaveUp: return "gave_up";
  }
  return "none";
}

CallbackState ParseCallback(std::string_view name) {
  if (name == "pending") return CallbackState::kPending;
  if (name == "delivered") return CallbackState::kDelivered;
  if (name == "gave_up") return CallbackState::kGaveUp;
  return CallbackState::kNone;
}

SqlValue TextOrNull(const std::string& text) {
  if (text.empty()) return nullptr;
  return text;
}

using Row = std::vector<std::optional<std::string>>;
using Rows = std::vector<Row>;

std::int64_t IntOf(const std::optional<std::string>& text) {
  std::int64_t value = 0;
  if (text) std::from_chars(text->data(), text->data() + text->size(), value);
  return value;
}

JobRecord RecordOf(const Row& row) {
  JobRecord job;
  job.id = row[0].value_or("");
  job.state = ParseJobState(row[1].value_or("")).value_or(JobState::kFailed);
  job.created_ms = IntOf(row[2]);
  job.updated_ms = IntOf(row[3]);
  job.options_json = row[4].value_or("");
  job.input_json = row[5].value_or("");
  job.result_json = row[6].value_or("");
  job.error_json = row[7].value_or("");
  job.attempts = static_cast<int>(IntOf(row[8]));
  job.callback = ParseCallback(row[9].value_or(""));
  job.callback_attempts = static_cast<int>(IntOf(row[10]));
  job.callback_at_ms = IntOf(row[11]);
  job.claim = row[12].value_or("");
  return job;
}

// One database, in the words the store needs: statements written for SQLite ("?1", the table
// `{jobs}`, `{lock}` where PostgreSQL locks the rows it picks) and their rows as text.
class JobSql {
 public:
  virtual ~JobSql() = default;
  virtual StatusOr<Rows> Run(std::string_view sql, const std::vector<SqlValue>& params, int columns) = 0;
  // `body` in one transaction; its Run calls belong to it.
  virtual Status Transaction(const std::function<Status()>& body) = 0;
  // Wakes the other instances for a new job, with the transaction's commit.
  virtual Status AnnounceJob() = 0;
  virtual bool shared() const = 0;  // other processes use the store too
};

// "{jobs}" -> table, "{lock}" -> lock clause; the rest as written.
std::string Dialect(std::string_view sql, std::string_view table, std::string_view lock, bool dollar_params) {
  std::string out;
  for (std::size_t i = 0; i < sql.size();) {
    if (sql.substr(i, 6) == "{jobs}") {
      out += table;
      i += 6;
    } else if (sql.substr(i, 6) == "{lock}") {
      out += lock;
      i += 6;
    } else if (dollar_params && sql[i] == '?') {
      out += '$';
      ++i;
    } else {
      out += sql[i++];
    }
  }
  return out;
}

class SqliteJobSql final : public JobSql {
 public:
  explicit SqliteJobSql(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  StatusOr<Rows> Run(std::string_view sql, const std::vector<SqlValue>& params, int columns) override {
    Rows rows;
    Status ran = db_->Run(Dialect(sql, "jobs", "", false), params, [&](const SqlRow& row) {
      Row values(static_cast<std::size_t>(columns));
      for (int c = 0; c < columns; ++c) {
        if (!row.IsNull(c)) values[static_cast<std::size_t>(c)] = row.Text(c);
      }
      rows.push_back(std::move(values));
    });
    if (!ran.ok()) return ran;
    return rows;
  }
  Status Transaction(const std::function<Status()>& body) override { return db_->Transaction(body); }
  Status AnnounceJob() override { return OkStatus(); }
  bool shared() const override { return false; }
  SqliteDb& db() { return *db_; }

 private:
  std::unique_ptr<SqliteDb> db_;
};

class PgJobSql final : public JobSql {
 public:
  explicit PgJobSql(std::shared_ptr<PgDb> db) : db_(std::move(db)) {}
  StatusOr<Rows> Run(std::string_view sql, const std::vector<SqlValue>& params, int columns) override {
    const PgParams texts = PgTextParams(params);
    const std::string statement = Dialect(sql, "transcoder_jobs", " FOR UPDATE SKIP LOCKED", true);
    auto result = current_ != nullptr ? current_->Exec(statement, texts) : db_->Exec(statement, texts);
    if (!result.ok()) return result.status();
    Rows rows;
    for (int r = 0; r < result->rows(); ++r) {
      Row values(static_cast<std::size_t>(columns));
      for (int c = 0; c < columns && c < result->columns(); ++c) {
        if (!result->IsNull(r, c)) values[static_cast<std::size_t>(c)] = std::string(result->Text(r, c));
      }
      rows.push_back(std::move(values));
    }
    return rows;
  }
  Status Transaction(const std::function<Status()>& body) override {
    return db_->Transaction([&](PgConnection& c) {
      current_ = &c;
      Status s = body();
      current_ = nullptr;
      return s;
    });
  }
  Status AnnounceJob() override {
    auto sent = Run("SELECT pg_notify(?1, 'job')", {std::string(kJobChannel)}, 0);
    return sent.ok() ? OkStatus() : sent.status();
  }
  bool shared() const override { return true; }

 private:
  std::shared_ptr<PgDb> db_;
  // The connection of the transaction this thread is inside, if any.
  static thread_local PgConnection* current_;
};

thread_local PgConnection* PgJobSql::current_ = nullptr;

Status Failed(const Status& s) { return Status(s.code(), "job database: " + std::string(s.message())); }

class SqlJobStore final : public JobStore {
 public:
  explicit SqlJobStore(std::unique_ptr<JobSql> sql) : sql_(std::move(sql)) {}

  Status Insert(const JobRecord& job) override {
    const std::string insert = "INSERT INTO {jobs} (" + std::string(kColumns) +
                               ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
    Status inserted = sql_->Transaction([&] {
      auto rows = sql_->Run(insert,
                            {job.id, std::string(JobStateName(job.state)), job.created_ms, job.updated_ms,
                             job.options_json, job.input_json, TextOrNull(job.result_json), TextOrNull(job.error_json),
                             static_cast<std::int64_t>(job.attempts), std::string(CallbackName(job.callback)),
                             static_cast<std::int64_t>(job.callback_attempts), job.callback_at_ms,
                             TextOrNull(job.claim)},
                            0);
      if (!rows.ok()) return rows.status();
      return sql_->AnnounceJob();
    });
    return inserted.ok() ? OkStatus() : Failed(inserted);
  }

  StatusOr<std::optional<JobRecord>> Find(std::string_view id) override {
    auto jobs = Select("WHERE id = ?1", {std::string(id)});
    if (!jobs.ok()) return jobs.status();
    if (jobs->empty()) return std::optional<JobRecord>();
    return std::optional<JobRecord>(std::move(jobs->front()));
  }

  StatusOr<std::vector<JobRecord>> List(std::optional<JobState> state, std::size_t limit) override {
    return state ? Select("WHERE state = ?1 ORDER BY seq DESC LIMIT ?2",
                          {std::string(JobStateName(*state)), static_cast<std::int64_t>(limit)})
                 : Select("ORDER BY seq DESC LIMIT ?1", {static_cast<std::int64_t>(limit)});
  }

  StatusOr<std::size_t> Count(JobState state) override {
    auto rows = sql_->Run("SELECT COUNT(*) FROM {jobs} WHERE state = ?1", {std::string(JobStateName(state))}, 1);
    if (!rows.ok()) return Failed(rows.status());
    return rows->empty() ? 0 : static_cast<std::size_t>(IntOf(rows->front()[0]));
  }

  Status UpdateCallback(const JobRecord& job) override {
    auto rows = sql_->Run("UPDATE {jobs} SET callback = ?2, callback_attempts = ?3, callback_at_ms = ?4 WHERE id = ?1",
                          {job.id, std::string(CallbackName(job.callback)),
                           static_cast<std::int64_t>(job.callback_attempts), job.callback_at_ms},
                          0);
    return rows.ok() ? OkStatus() : Failed(rows.status());
  }

  StatusOr<std::optional<JobRecord>> Claim(const std::string& claim, std::int64_t now_ms,
                                           std::int64_t lease_ms) override {
    const std::string sql =
        "UPDATE {jobs} SET state = 'running', claim = ?1, lease_until_ms = ?3, attempts = attempts + 1, "
        "updated_ms = ?2, cancel_requested = 0 "
        "WHERE seq = (SELECT seq FROM {jobs} WHERE state = 'queued' OR (state = 'running' AND lease_until_ms < ?2) "
        "ORDER BY seq LIMIT 1{lock}) RETURNING " +
        std::string(kColumns);
    auto rows = sql_->Run(sql, {claim, now_ms, now_ms + lease_ms}, kColumnCount);
    if (!rows.ok()) return Failed(rows.status());
    if (rows->empty()) return std::optional<JobRecord>();
    return std::optional<JobRecord>(RecordOf(rows->front()));
  }

  StatusOr<Renewal> Renew(const std::vector<std::string>& claims, std::int64_t now_ms, std::int64_t lease_ms) override {
    Renewal renewal;
    for (const auto& claim : claims) {
      auto rows = sql_->Run("UPDATE {jobs} SET lease_until_ms = ?2 WHERE claim = ?1 AND state = 'running' "
                            "RETURNING cancel_requested",
                            {claim, now_ms + lease_ms}, 1);
      if (!rows.ok()) return Failed(rows.status());
      if (rows->empty()) {
        renewal.lost.push_back(claim);
      } else if (IntOf(rows->front()[0]) != 0) {
        renewal.cancel.push_back(claim);
      }
    }
    return renewal;
  }

  StatusOr<bool> Finish(const JobRecord& job) override {
    auto rows = sql_->Run(
        "UPDATE {jobs} SET state = ?2, updated_ms = ?3, result = ?4, error = ?5, callback = ?6, callback_attempts = ?7, "
        "callback_at_ms = ?8, claim = NULL, lease_until_ms = 0, cancel_requested = 0 "
        "WHERE claim = ?1 AND state = 'running' RETURNING id",
        {job.claim, std::string(JobStateName(job.state)), job.updated_ms, TextOrNull(job.result_json),
         TextOrNull(job.error_json), std::string(CallbackName(job.callback)),
         static_cast<std::int64_t>(job.callback_attempts), job.callback_at_ms},
        1);
    if (!rows.ok()) return Failed(rows.status());
    return !rows->empty();
  }

  Status Release(const std::string& claim) override {
    auto rows = sql_->Run("UPDATE {jobs} SET state = 'queued', claim = NULL, lease_until_ms = 0 "
                          "WHERE claim = ?1 AND state = 'running'",
                          {claim}, 0);
    return rows.ok() ? OkStatus() : Failed(rows.status());
  }

  StatusOr<std::pair<CancelOutcome, JobRecord>> Cancel(std::string_view id,
                                                       const std::function<void(JobRecord&)>& end) override {
    std::pair<CancelOutcome, JobRecord> outcome{CancelOutcome::kNotFound, JobRecord{}};
    Status done = sql_->Transaction([&]() -> Status {
      outcome = {CancelOutcome::kNotFound, JobRecord{}};
      // The row is locked on PostgreSQL (SQLite's transaction holds the whole database).
      auto rows = sql_->Run("SELECT " + std::string(kColumns) + " FROM {jobs} WHERE id = ?1" +
                                (sql_->shared() ? " FOR UPDATE" : ""),
                            {std::string(id)}, kColumnCount);
      if (!rows.ok()) return rows.status();
      if (rows->empty()) return OkStatus();
      JobRecord job = RecordOf(rows->front());
      if (IsTerminal(job.state)) {
        outcome = {CancelOutcome::kEnded, std::move(job)};
        return OkStatus();
      }
      if (job.state == JobState::kRunning) {
        auto asked = sql_->Run("UPDATE {jobs} SET cancel_requested = 1 WHERE id = ?1", {job.id}, 0);
        if (!asked.ok()) return asked.status();
        outcome = {CancelOutcome::kRequested, std::move(job)};
        return OkStatus();
      }
      end(job);
      auto ended = sql_->Run("UPDATE {jobs} SET state = ?2, updated_ms = ?3, error = ?4, callback = ?5, "
                             "callback_at_ms = ?6 WHERE id = ?1",
                             {job.id, std::string(JobStateName(job.state)), job.updated_ms, TextOrNull(job.error_json),
                              std::string(CallbackName(job.callback)), job.callback_at_ms},
                             0);
      if (!ended.ok()) return ended.status();
      outcome = {CancelOutcome::kCancelled, std::move(job)};
      return OkStatus();
    });
    if (!done.ok()) return Failed(done);
    return outcome;
  }

  StatusOr<std::vector<JobRecord>> ClaimCallbacks(std::int64_t now_ms, std::int64_t stale_ms) override {
    const std::string sql =
        "UPDATE {jobs} SET callback_at_ms = ?1 WHERE seq IN (SELECT seq FROM {jobs} WHERE callback = 'pending' "
        "AND callback_at_ms < ?2 ORDER BY seq LIMIT 100{lock}) RETURNING " +
        std::string(kColumns);
    auto rows = sql_->Run(sql, {now_ms, now_ms - stale_ms}, kColumnCount);
    if (!rows.ok()) return Failed(rows.status());
    std::vector<JobRecord> jobs;
    for (const auto& row : *rows) jobs.push_back(RecordOf(row));
    std::sort(jobs.begin(), jobs.end(), [](const JobRecord& a, const JobRecord& b) { return a.updated_ms < b.updated_ms; });
    return jobs;
  }

  StatusOr<std::size_t> Requeue() override {
    if (sql_->shared()) return std::size_t{0};
    auto rows = sql_->Run("UPDATE {jobs} SET state = 'queued', claim = NULL, lease_until_ms = 0 "
                          "WHERE state = 'running' RETURNING id",
                          {}, 1);
    if (!rows.ok()) return Failed(rows.status());
    return rows->size();
  }

 private:
  StatusOr<std::vector<JobRecord>> Select(std::string_view where, const std::vector<SqlValue>& params) {
    auto rows = sql_->Run("SELECT " + std::string(kColumns) + " FROM {jobs} " + std::string(where), params, kColumnCount);
    if (!rows.ok()) return Failed(rows.status());
    std::vector<JobRecord> jobs;
    for (const auto& row : *rows) jobs.push_back(RecordOf(row));
    return jobs;
  }

  std::unique_ptr<JobSql> sql_;
};

}  // namespace

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kDone: return "done";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "queued";
}

std::optional<JobState> ParseJobState(std::string_view name) {
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kDone, JobState::kFailed, JobState::kCancelled}) {
    if (JobStateName(s) == name) return s;
  }
  return std::nullopt;
}

std::span<const Migration> JobStoreMigrations() { return kMigrations; }

StatusOr<std::unique_ptr<JobStore>> JobStore::Open(std::unique_ptr<SqliteDb> db) {
  if (auto migrated = Migrate(*db, kJobStoreName, kMigrations); !migrated.ok()) {
    return Status(migrated.status().code(), "job database: " + migrated.status().message());
  }
  return std::unique_ptr<JobStore>(std::make_unique<SqlJobStore>(std::make_unique<SqliteJobSql>(std::move(db))));
}

StatusOr<std::unique_ptr<JobStore>> JobStore::OpenPostgres(std::shared_ptr<PgDb> db) {
  if (auto migrated = Migrate(*db, kJobStoreName, kMigrations); !migrated.ok()) {
    return Status(migrated.status().code(), "job database: " + migrated.status().message());
  }
  return std::unique_ptr<JobStore>(std::make_unique<SqlJobStore>(std::make_unique<PgJobSql>(std::move(db))));
}

}  // namespace plyr::transcoder
