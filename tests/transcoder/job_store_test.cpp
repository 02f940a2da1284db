#include "transcoder/job_store.h"

#include <gtest/gtest.h>

#include "common/migrations.h"
#include "tests/support/process.h"

namespace plyr::transcoder {
namespace {

std::unique_ptr<JobStore> OpenStore(const std::filesystem::path& path) {
  auto db = SqliteDb::Open(path);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  auto store = JobStore::Open(std::move(*db));
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return std::move(*store);
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
                           "VALUES ('old', 'done', 1, 1, '{}', '{}')")
                    .ok());
  }
  auto store = OpenStore(path);
  auto old = store->Find("old");
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  ASSERT_TRUE(old->has_value());
  EXPECT_EQ((*old)->state, JobState::kDone);
  auto db = SqliteDb::Open(path);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*SchemaVersion(**db, kJobStoreName), 1);
}

TEST(JobStore, RecoverRequeuesRunningJobsInOrderAfterReopen) {
  testing::TempDir dir;
  const auto path = dir.path() / "jobs.db";
  {
    auto store = OpenStore(path);
    ASSERT_TRUE(store->Insert(MakeJob("a", JobState::kRunning)).ok());
    ASSERT_TRUE(store->Insert(MakeJob("b", JobState::kDone)).ok());
    ASSERT_TRUE(store->Insert(MakeJob("c", JobState::kQueued)).ok());
    EXPECT_FALSE(store->Insert(MakeJob("a", JobState::kQueued)).ok()) << "ids are unique";
  }
  auto store = OpenStore(path);  // as after kill -9: only committed rows exist
  auto recovered = store->Recover();
  ASSERT_TRUE(recovered.ok());
  ASSERT_EQ(recovered->size(), 2u);
  EXPECT_EQ((*recovered)[0].id, "a");
  EXPECT_EQ((*recovered)[0].state, JobState::kQueued);
  EXPECT_EQ((*recovered)[1].id, "c");
  EXPECT_EQ((*store->Find("a"))->state, JobState::kQueued);
  EXPECT_EQ((*store->Find("b"))->state, JobState::kDone);
  auto missing = store->Find("zzz");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(JobStore, UpdateListAndCallbacks) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "jobs.db");
  for (const char* id : {"j1", "j2", "j3"}) ASSERT_TRUE(store->Insert(MakeJob(id, JobState::kQueued)).ok());
  JobRecord done = **store->Find("j2");
  done.state = JobState::kDone;
  done.result_json = R"({"ok":true})";
  done.callback = CallbackState::kPending;
  done.attempts = 2;
  ASSERT_TRUE(store->Update(done).ok());
  auto again = *store->Find("j2");
  EXPECT_EQ(again->result_json, R"({"ok":true})");
  EXPECT_EQ(again->attempts, 2);
  EXPECT_EQ(again->callback, CallbackState::kPending);
  auto newest = *store->List(std::nullopt, 2);
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].id, "j3");
  auto finished = *store->List(JobState::kDone, 10);
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].id, "j2");
  EXPECT_EQ(*store->Count(JobState::kQueued), 2u);
  auto owed = store->PendingCallbacks();
  ASSERT_TRUE(owed.ok());
  ASSERT_EQ(owed->size(), 1u);
  EXPECT_EQ((*owed)[0].id, "j2");
  EXPECT_EQ(ParseJobState("cancelled"), JobState::kCancelled);
  EXPECT_FALSE(ParseJobState("paused").has_value());
}

TEST(JobStore, AStoreThatCannotBeReadFailsTheRestartAndTheRequestsInsteadOfDroppingJobs) {
  testing::TempDir dir;
  const auto path = dir.path() / "jobs.db";
  auto store = OpenStore(path);
  ASSERT_TRUE(store->Insert(MakeJob("a", JobState::kRunning)).ok());
  // Another connection breaks the table under the store: its reads now fail.
  auto other = SqliteDb::Open(path);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Run("ALTER TABLE jobs RENAME TO jobs_gone").ok());
  auto recovered = store->Recover();
  ASSERT_FALSE(recovered.ok()) << "an empty list here would drop job a";
  EXPECT_EQ(recovered.status().code(), StatusCode::kInternal);
  EXPECT_NE(recovered.status().message().find("job database: "), std::string::npos);
  EXPECT_FALSE(store->PendingCallbacks().ok());
  // Nor does a request read a failed read as "no such job".
  EXPECT_FALSE(store->Find("a").ok());
  EXPECT_FALSE(store->List(std::nullopt, 10).ok());
  EXPECT_FALSE(store->Count(JobState::kQueued).ok());
}

}  // namespace
}  // namespace plyr::transcoder
