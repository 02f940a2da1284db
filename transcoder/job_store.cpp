#include "transcoder/job_store.h"

#include "common/migrations.h"

namespace plyr::transcoder {

namespace {

// Version 1 is the schema of the builds before migrations (IF NOT EXISTS: adopted as it is).
constexpr Migration kMigrations[] = {
    {"jobs",
     "CREATE TABLE IF NOT EXISTS jobs ("
     "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  id TEXT NOT NULL UNIQUE, state TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
     "  options TEXT NOT NULL, input TEXT NOT NULL, result TEXT, error TEXT,"
     "  attempts INTEGER NOT NULL DEFAULT 0, callback TEXT NOT NULL DEFAULT 'none',"
     "  callback_attempts INTEGER NOT NULL DEFAULT 0) STRICT;"
     "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq)",
     ""},
};

constexpr std::string_view kColumns =
    "id, state, created_ms, updated_ms, options, input, result, error, attempts, callback, callback_attempts";

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
  return std::unique_ptr<JobStore>(new JobStore(std::move(db)));
}

Status JobStore::Insert(const JobRecord& job) {
  const std::string sql = "INSERT INTO jobs (" + std::string(kColumns) + ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)";
  Status inserted = db_->Run(sql, {job.id, std::string(JobStateName(job.state)), job.created_ms, job.updated_ms,
                                   job.options_json, job.input_json, TextOrNull(job.result_json),
                                   TextOrNull(job.error_json), static_cast<std::int64_t>(job.attempts),
                                   std::string(CallbackName(job.callback)),
                                   static_cast<std::int64_t>(job.callback_attempts)});
  if (!inserted.ok()) return Status(inserted.code(), "job database: " + inserted.message());
  return OkStatus();
}

Status JobStore::Update(const JobRecord& job) {
  Status updated = db_->Run("UPDATE jobs SET state=?2, updated_ms=?3, result=?4, error=?5, attempts=?6, callback=?7, "
                            "callback_attempts=?8 WHERE id=?1",
                            {job.id, std::string(JobStateName(job.state)), job.updated_ms, TextOrNull(job.result_json),
                             TextOrNull(job.error_json), static_cast<std::int64_t>(job.attempts),
                             std::string(CallbackName(job.callback)),
                             static_cast<std::int64_t>(job.callback_attempts)});
  if (!updated.ok()) return Status(updated.code(), "job database: " + updated.message());
  return OkStatus();
}

StatusOr<std::vector<JobRecord>> JobStore::Select(std::string_view where, const std::vector<SqlValue>& params) {
  std::vector<JobRecord> jobs;
  const std::string sql = "SELECT " + std::string(kColumns) + " FROM jobs " + std::string(where);
  Status read = db_->Run(sql, params, [&](const SqlRow& row) {
    JobRecord job;
    job.id = row.Text(0);
    job.state = ParseJobState(row.Text(1)).value_or(JobState::kFailed);
    job.created_ms = row.Int(2);
    job.updated_ms = row.Int(3);
    job.options_json = row.Text(4);
    job.input_json = row.Text(5);
    if (!row.IsNull(6)) job.result_json = row.Text(6);
    if (!row.IsNull(7)) job.error_json = row.Text(7);
    job.attempts = static_cast<int>(row.Int(8));
    job.callback = ParseCallback(row.Text(9));
    job.callback_attempts = static_cast<int>(row.Int(10));
    jobs.push_back(std::move(job));
  });
  if (!read.ok()) return Status(read.code(), "job database: " + read.message());
  return jobs;
}

StatusOr<std::optional<JobRecord>> JobStore::Find(std::string_view id) {
  auto jobs = Select("WHERE id=?1", {std::string(id)});
  if (!jobs.ok()) return jobs.status();
  if (jobs->empty()) return std::optional<JobRecord>();
  return std::optional<JobRecord>(std::move(jobs->front()));
}

StatusOr<std::vector<JobRecord>> JobStore::List(std::optional<JobState> state, std::size_t limit) {
  return state ? Select("WHERE state=?1 ORDER BY seq DESC LIMIT ?2",
                        {std::string(JobStateName(*state)), static_cast<std::int64_t>(limit)})
               : Select("ORDER BY seq DESC LIMIT ?1", {static_cast<std::int64_t>(limit)});
}

StatusOr<std::vector<JobRecord>> JobStore::Recover() {
  auto jobs = Select("WHERE state IN ('queued','running') ORDER BY seq", {});
  if (!jobs.ok()) return jobs.status();
  for (auto& job : *jobs) {
    if (job.state != JobState::kRunning) continue;
    job.state = JobState::kQueued;
    if (auto s = Update(job); !s.ok()) return s;
  }
  return jobs;
}

StatusOr<std::vector<JobRecord>> JobStore::PendingCallbacks() {
  return Select("WHERE callback='pending' ORDER BY seq", {});
}

StatusOr<std::size_t> JobStore::Count(JobState state) {
  std::size_t n = 0;
  Status counted = db_->Run("SELECT COUNT(*) FROM jobs WHERE state=?1", {std::string(JobStateName(state))},
                            [&](const SqlRow& row) { n = static_cast<std::size_t>(row.Int(0)); });
  if (!counted.ok()) return Status(counted.code(), "job database: " + counted.message());
  return n;
}

}  // namespace plyr::transcoder
