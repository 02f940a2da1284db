#include "transcoder/job_store.h"

#include <gtest/gtest.h>

#include "common/migrations.h"
#include "tests/support/pg_test_server.h"
#include "tests/support/process.h"

namespace plyr::transcoder {
namespace {

std::unique_ptr<JobStore> OpenSqliteStore(const std::filesystem::path& path) {
  auto db = SqliteDb::Open(path);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  auto store = JobStore::Open(std::move(*db));
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

JobRecord MakeJob(const std::string& id, JobState state) {
  JobRecord job;
  job.id = id;
  job.state = state;
  job.created_ms = job.updated_ms = 1000;
  job.options_json = R"({"owner_did":"did:plc:a"})";
  job.input_json = R"({"file_id":"0123456789abcdef"})";
  return job;
}

TEST(JobStore, ADatabaseOfABuildBeforeMigrationsIsAdoptedWithItsJobs) {
  testing::TempDir dir;
  const auto path = dir.path() / "jobs.db";
  {
    // The schema as builds before migrations made it, with a job in it.
    auto db = SqliteDb::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Run("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
                           "state TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, "
                           "options TEXT NOT NULL, input TEXT NOT NULL, result TEXT, error TEXT, "
                           "attempts INTEGER NOT NULL DEFAULT 0, callback TEXT NOT NULL DEFAULT 'none', "
                           "callback_attempts INTEGER NOT NULL DEFAULT 0) STRICT")
                    .ok());
    ASSERT_TRUE((*db)->Run("INSERT INTO jobs (id, state, created_ms, updated_ms, options, input) "
                           "VALUES ('old', 'done', 1, 1, '{}', '{}'), ('left', 'running', 2, 2, '{}', '{}')")
                    .ok());
  }
  auto store = OpenSqliteStore(path);
  auto old = store->Find("old");
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  ASSERT_TRUE(old->has_value());
  EXPECT_EQ((*old)->state, JobState::kDone);
  // A job the old build left running is queued again and claimable.
  EXPECT_EQ(*store->Requeue(), 1u);
  auto claimed = store->Claim("c1", 5000, 1000);
  ASSERT_TRUE(claimed.ok() && claimed->has_value()) << claimed.status().ToString();
  EXPECT_EQ((*claimed)->id, "left");
  auto db = SqliteDb::Open(path);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*SchemaVersion(**db, kJobStoreName), static_cast<int>(JobStoreMigrations().size()));
}

TEST(JobStore, AStoreThatCannotBeReadFailsTheRestartAndTheRequestsInsteadOfDroppingJobs) {
  testing::TempDir dir;
  const auto path = dir.path() / "jobs.db";
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store->Insert(MakeJob("a", JobState::kRunning)).ok());
  // Another connection breaks the table under the store: its reads now fail.
  auto other = SqliteDb::Open(path);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Run("ALTER TABLE jobs RENAME TO jobs_gone").ok());
  auto requeued = store->Requeue();
  ASSERT_FALSE(requeued.ok()) << "a start that cannot read the queue must not go on as if it were empty";
  EXPECT_NE(requeued.status().message().find("job database: "), std::string::npos);
  EXPECT_FALSE(store->ClaimCallbacks(1000, 0).ok());
  EXPECT_FALSE(store->Claim("c", 1000, 1000).ok());
  // Nor does a request read a failed read as "no such job".
  EXPECT_FALSE(store->Find("a").ok());
  EXPECT_FALSE(store->List(std::nullopt, 10).ok());
  EXPECT_FALSE(store->Count(JobState::kQueued).ok());
}

// The same queue semantics on SQLite and on PostgreSQL.
class JobQueueTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      url_ = testing::FreshPgDatabase();
      ASSERT_FALSE(url_.empty());
    }
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  // Another handle on the same jobs: a restarted process, or another instance.
  std::unique_ptr<JobStore> Open() {
    if (GetParam() == "sqlite") return OpenSqliteStore(dir_.path() / "jobs.db");
    auto db = PgDb::Open(url_, 2);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    if (!db.ok()) return nullptr;
    auto store = JobStore::OpenPostgres(std::shared_ptr<PgDb>(std::move(*db)));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  testing::TempDir dir_;
  std::string url_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(JobQueueTest, JobsAreClaimedOnceInOrderAndEndOnlyUnderTheirClaim) {
  for (const char* id : {"j1", "j2", "j3"}) ASSERT_TRUE(store_->Insert(MakeJob(id, JobState::kQueued)).ok());
  EXPECT_FALSE(store_->Insert(MakeJob("j1", JobState::kQueued)).ok()) << "ids are unique";
  auto other = Open();
  auto first = store_->Claim("a-1", 10'000, 5'000);
  auto second = other->Claim("b-1", 10'000, 5'000);
  ASSERT_TRUE(first.ok() && first->has_value());
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*first)->id, "j1");
  EXPECT_EQ((*second)->id, "j2");
  EXPECT_EQ((*first)->state, JobState::kRunning);
  EXPECT_EQ((*first)->attempts, 1);
  EXPECT_EQ((*first)->claim, "a-1");
  EXPECT_EQ(*store_->Count(JobState::kQueued), 1u);
  EXPECT_EQ(*store_->Count(JobState::kRunning), 2u);

  // b's runner dies: its lease runs out, and the job is claimed again (after the queued one).
  auto third = store_->Claim("a-2", 11'000, 5'000);
  ASSERT_TRUE(third.ok() && third->has_value());
  EXPECT_EQ((*third)->id, "j3");
  EXPECT_FALSE(store_->Claim("a-3", 14'000, 5'000)->has_value()) << "b's lease still holds";
  // a renews its leases; b does not.
  ASSERT_TRUE(store_->Renew({"a-1", "a-2"}, 14'000, 5'000)->lost.empty());
  auto retaken = store_->Claim("a-4", 15'001, 5'000);
  ASSERT_TRUE(retaken.ok() && retaken->has_value());
  EXPECT_EQ((*retaken)->id, "j2");
  EXPECT_EQ((*retaken)->attempts, 2);

  // b comes back: its renewal says the claim is lost, and its end is not recorded.
  auto renewal = other->Renew({"b-1"}, 15'500, 5'000);
  ASSERT_TRUE(renewal.ok());
  EXPECT_EQ(renewal->lost, std::vector<std::string>{"b-1"});
  JobRecord stale = **second;
  stale.state = JobState::kDone;
  stale.result_json = R"({"by":"b"})";
  EXPECT_FALSE(*other->Finish(stale));
  JobRecord done = **retaken;
  done.state = JobState::kDone;
  done.result_json = R"({"by":"a"})";
  done.callback = CallbackState::kPending;
  EXPECT_TRUE(*store_->Finish(done));
  EXPECT_FALSE(*store_->Finish(done)) << "once";
  auto stored = **store_->Find("j2");
  EXPECT_EQ(stored.state, JobState::kDone);
  EXPECT_EQ(stored.result_json, R"({"by":"a"})");
  EXPECT_TRUE(stored.claim.empty());

  // a's renewed leases hold past their first end.
  EXPECT_FALSE(other->Claim("b-2", 17'000, 5'000)->has_value());

  // Newest first, filtered.
  auto newest = *store_->List(std::nullopt, 2);
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].id, "j3");
  auto finished = *store_->List(JobState::kDone, 10);
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].id, "j2");
}

TEST_P(JobQueueTest, CancellingEndsAQueuedJobAndAsksARunningOneToStop) {
  for (const char* id : {"q", "r"}) ASSERT_TRUE(store_->Insert(MakeJob(id, JobState::kQueued)).ok());
  auto running = store_->Claim("a-1", 1000, 5000);
  ASSERT_TRUE(running.ok() && running->has_value());
  ASSERT_EQ((*running)->id, "q");
  auto end = [](JobRecord& job) {
    job.state = JobState::kCancelled;
    job.error_json = R"({"error":"Cancelled"})";
    job.callback = CallbackState::kPending;
  };
  auto queued = store_->Cancel("r", end);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->first, JobStore::CancelOutcome::kCancelled);
  EXPECT_EQ((**store_->Find("r")).state, JobState::kCancelled);
  EXPECT_EQ(store_->Cancel("r", end)->first, JobStore::CancelOutcome::kEnded);
  EXPECT_EQ(store_->Cancel("zzz", end)->first, JobStore::CancelOutcome::kNotFound);

  auto asked = Open()->Cancel("q", end);
  ASSERT_TRUE(asked.ok());
  EXPECT_EQ(asked->first, JobStore::CancelOutcome::kRequested);
  auto renewal = store_->Renew({"a-1"}, 2000, 5000);
  ASSERT_TRUE(renewal.ok());
  EXPECT_EQ(renewal->cancel, std::vector<std::string>{"a-1"}) << "the runner learns it at its renewal";
  EXPECT_TRUE(renewal->lost.empty()) << "and still holds the claim, to record the cancellation";

  // A claim given back (its process stopping) is claimable at once.
  ASSERT_TRUE(store_->Insert(MakeJob("s", JobState::kQueued)).ok());
  auto taken = store_->Claim("a-2", 3000, 60'000);
  ASSERT_TRUE(taken.ok() && taken->has_value());
  ASSERT_TRUE(store_->Release("a-2").ok());
  auto again = Open()->Claim("b-1", 3001, 60'000);
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->id, "s");
}

TEST_P(JobQueueTest, OwedCallbacksAreClaimedWhenNobodyHasTriedThemForAWhile) {
  ASSERT_TRUE(store_->Insert(MakeJob("j", JobState::kQueued)).ok());
  auto claimed = store_->Claim("a-1", 1000, 5000);
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  JobRecord done = **claimed;
  done.state = JobState::kDone;
  done.callback = CallbackState::kPending;
  done.callback_at_ms = 2000;
  ASSERT_TRUE(*store_->Finish(done));
  EXPECT_TRUE(store_->ClaimCallbacks(3000, 120'000)->empty()) << "its runner is still on it";
  auto owed = Open()->ClaimCallbacks(200'000, 120'000);
  ASSERT_TRUE(owed.ok());
  ASSERT_EQ(owed->size(), 1u);
  EXPECT_EQ((*owed)[0].id, "j");
  EXPECT_TRUE(store_->ClaimCallbacks(200'001, 120'000)->empty()) << "claimed: not handed out twice";
  JobRecord delivered = (*owed)[0];
  delivered.callback = CallbackState::kDelivered;
  delivered.callback_attempts = 1;
  ASSERT_TRUE(store_->UpdateCallback(delivered).ok());
  EXPECT_EQ((**store_->Find("j")).callback, CallbackState::kDelivered);
  EXPECT_EQ(ParseJobState("cancelled"), JobState::kCancelled);
  EXPECT_FALSE(ParseJobState("paused").has_value());
}

INSTANTIATE_TEST_SUITE_P(Engines, JobQueueTest, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace plyr::transcoder
