// JobStore: transcode jobs, durable, and the queue every transcoder instance claims work from:
// SQLite in the data folder (the embedded default: one instance) or PostgreSQL shared by any
// number of instances (database.url).
//
// A job row is written before the job is acknowledged (202), and every change of state is
// committed before anyone is told of it, so `kill -9` at any point loses no job.
//
// The queue. An instance claims the oldest claimable job (Claim): queued, or running under a
// lease that has run out (its runner died or lost its database). The claim is a token, unique
// per claim, and a lease the runner renews while it works (Renew). Only the holder of the
// current claim can record the job's end (Finish): a runner whose lease ran out and whose job
// another runner took can no longer record anything, so each job ends once, with one result,
// from the caller's point of view. On PostgreSQL claims skip rows another transaction holds
// (FOR UPDATE SKIP LOCKED), so instances never wait for each other.
//
// Progress is not stored; it lives in the memory of the instance running the job.
//
// Every call fails with "job database: " and the database's message, under its code (a full
// disk is ResourceExhausted, an unreachable server Unavailable): a start never drops a job it
// could not read, and a request never reads a failed read as "no such job".
// Blocking: call from a worker thread, never from an I/O thread. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/migrations.h"
#include "common/pg_db.h"
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
  int attempts = 0;          // how many times the job was claimed (a runner that died re-runs it)
  CallbackState callback = CallbackState::kNone;
  int callback_attempts = 0;
  std::int64_t callback_at_ms = 0;  // the last delivery attempt, or claim of the delivery
  std::string claim;                // the current claim's token while running
};

// The job store's name in schema_migrations (common/migrations.h), and its migrations (both
// dialects). kJobChannel: where PostgreSQL announces a new job to idle instances.
inline constexpr std::string_view kJobStoreName = "transcoder.jobs";
std::span<const Migration> JobStoreMigrations();
inline constexpr std::string_view kJobChannel = "plyr_transcoder_jobs";

class JobStore {
 public:
  static StatusOr<std::unique_ptr<JobStore>> Open(std::unique_ptr<SqliteDb> db);
  static StatusOr<std::unique_ptr<JobStore>> OpenPostgres(std::shared_ptr<PgDb> db);
  virtual ~JobStore() = default;

  // A new job (on PostgreSQL announced on kJobChannel with the commit).
  virtual Status Insert(const JobRecord& job) = 0;
  // nullopt: no job with this id.
  virtual StatusOr<std::optional<JobRecord>> Find(std::string_view id) = 0;
  // Newest first; `state` filters when set; at most `limit`.
  virtual StatusOr<std::vector<JobRecord>> List(std::optional<JobState> state, std::size_t limit) = 0;
  // How many jobs are in `state`.
  virtual StatusOr<std::size_t> Count(JobState state) = 0;
  // Replaces the row's callback fields (a delivery's progress).
  virtual Status UpdateCallback(const JobRecord& job) = 0;

  // The oldest claimable job, now running under a new claim `claim` until now + lease; nullopt
  // when there is none.
  virtual StatusOr<std::optional<JobRecord>> Claim(const std::string& claim, std::int64_t now_ms,
                                                   std::int64_t lease_ms) = 0;
  // Extends the leases of the claims in `claims`. Returns those to stop: `cancel`, whose job a
  // cancellation asked to stop (the claim still holds: record the cancellation with Finish), and
  // `lost`, no longer held (the lease ran out and the job was claimed again, or it ended).
  struct Renewal {
    std::vector<std::string> cancel;
    std::vector<std::string> lost;
  };
  virtual StatusOr<Renewal> Renew(const std::vector<std::string>& claims, std::int64_t now_ms,
                                  std::int64_t lease_ms) = 0;
  // Records the end of a claimed job (state, result or error, callback) if `job.claim` still
  // holds it; false (and nothing written) when it does not.
  virtual StatusOr<bool> Finish(const JobRecord& job) = 0;
  // Gives a claim back (its runner stopped with the process): the job is queued again at once.
  virtual Status Release(const std::string& claim) = 0;

  // A cancellation, in one transaction: a queued job ends at once (`end` sets its state, error
  // and callback); a running one is asked to stop (its runner learns it at its next renewal).
  enum class CancelOutcome { kNotFound, kCancelled, kRequested, kEnded };
  virtual StatusOr<std::pair<CancelOutcome, JobRecord>> Cancel(std::string_view id,
                                                               const std::function<void(JobRecord&)>& end) = 0;

  // Ended jobs whose callback is owed and was last attempted (or claimed) before `stale_ms`:
  // claimed for delivery now (their callback_at_ms set to now), oldest first.
  virtual StatusOr<std::vector<JobRecord>> ClaimCallbacks(std::int64_t now_ms, std::int64_t stale_ms) = 0;

  // For a store one process owns (SQLite): the running jobs a stopped process left go back to the
  // queue at once, instead of after their leases. On PostgreSQL nothing is touched (another
  // instance may be running them); returns how many were queued again.
  virtual StatusOr<std::size_t> Requeue() = 0;
};

}  // namespace plyr::transcoder
