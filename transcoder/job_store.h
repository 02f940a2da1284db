// JobStore: transcode jobs, durable in SQLite (WAL, synchronous=FULL).
//
// A job row is written before the job is acknowledged (202), and every change of state is
// committed before anyone is told of it, so `kill -9` at any point loses no job: on restart,
// Recover() returns the queued and running ones (running ones go back to queued and are run
// again from the start). Progress is not stored; it lives in the service's memory.
//
// Blocking (each call may fsync): call from a worker thread, never from an I/O thread.
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/migrations.h"
#include "common/sqlite_db.h"
#include "common/status.h"

namespace plyr::transcoder {

enum class JobState { kQueued, kRunning, kDone, kFailed, kCancelled };
std::string_view JobStateName(JobState state);  // "queued", "running", "done", "failed", "cancelled"
std::optional<JobState> ParseJobState(std::string_view name);
inline bool IsTerminal(JobState state) { return state >= JobState::kDone; }

// Where a job's end is reported to its submitter.
enum class CallbackState { kNone, kPending, kDelivered, kGaveUp };

struct JobRecord {
  std::string id;
  JobState state = JobState::kQueued;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::string options_json;  // what the submitter asked for (renditions, owner, gate, uri, callback)
  std::string input_json;    // {"file_id", "size", "content_type"}
  std::string result_json;   // set when done
  std::string error_json;    // set when failed or cancelled: {"error", "message"}
  int attempts = 0;          // how many times the job was started (a restart re-runs it)
  CallbackState callback = CallbackState::kNone;
  int callback_attempts = 0;
};

// Every call fails with "job database: " and SQLite's message, under SqliteDb's code (a full disk
// is ResourceExhausted): a start never drops a job it could not read (Recover, PendingCallbacks),
// and a request never reads a failed read as "no such job".
// The job store's name in schema_migrations (common/migrations.h).
inline constexpr std::string_view kJobStoreName = "transcoder.jobs";
std::span<const Migration> JobStoreMigrations();

class JobStore {
 public:
  static StatusOr<std::unique_ptr<JobStore>> Open(std::unique_ptr<SqliteDb> db);

  Status Insert(const JobRecord& job);
  // nullopt: no job with this id.
  StatusOr<std::optional<JobRecord>> Find(std::string_view id);
  // Newest first; `state` filters when set; at most `limit`.
  StatusOr<std::vector<JobRecord>> List(std::optional<JobState> state, std::size_t limit);
  // Replaces the row's mutable fields (state, times, result, error, attempts, callback).
  Status Update(const JobRecord& job);
  // Jobs that were queued or running when the process stopped, oldest first, all now queued.
  StatusOr<std::vector<JobRecord>> Recover();
  // Terminal jobs whose callback is still owed.
  StatusOr<std::vector<JobRecord>> PendingCallbacks();
  // How many jobs are in `state`.
  StatusOr<std::size_t> Count(JobState state);

 private:
  explicit JobStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  StatusOr<std::vector<JobRecord>> Select(std::string_view where, const std::vector<SqlValue>& params);
  std::unique_ptr<SqliteDb> db_;
};

}  // namespace plyr::transcoder
