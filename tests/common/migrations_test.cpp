// Schema migrations on SQLite and on a real PostgreSQL server (a throw-away cluster).
#include "common/migrations.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/pg_db.h"
#include "common/sqlite_db.h"
#include "tests/support/pg_test_server.h"

namespace plyr {
namespace {


// Version 1 makes a table, version 2 adds a column and records that it ran (in `ran`), so a
// migration run twice would show.
const Migration kMigrations[] = {
    {"create notes", "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
     "CREATE TABLE IF NOT EXISTS notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)"},
    {"notes get an author",
     "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT '';"
     "CREATE TABLE ran (what TEXT); INSERT INTO ran VALUES ('v2')",
     "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT '';"
     "CREATE TABLE ran (what TEXT); INSERT INTO ran VALUES ('v2')"},
};
const Migration kBroken[] = {
    kMigrations[0],
    {"a typo", "ALTER TABLE notes ADD COLUMN x TEXT; ALTER TABLE nope ADD COLUMN y TEXT",
     "ALTER TABLE notes ADD COLUMN x TEXT; ALTER TABLE nope ADD COLUMN y TEXT"},
};

TEST(SqliteMigrationsTest, FromEmptyFromThePreviousVersionAndNeverBackwards) {
  testing::TempDir dir;
  auto db = SqliteDb::Open(dir.path() / "m.db");
  ASSERT_TRUE(db.ok());
  auto from_empty = Migrate(**db, "notes", std::span(kMigrations, 1));
  ASSERT_TRUE(from_empty.ok()) << from_empty.status().ToString();
  EXPECT_EQ(*from_empty, 0);
  ASSERT_TRUE((*db)->Run("INSERT INTO notes (id, body) VALUES (1, 'kept')").ok());

  auto from_previous = Migrate(**db, "notes", kMigrations);
  ASSERT_TRUE(from_previous.ok()) << from_previous.status().ToString();
  EXPECT_EQ(*from_previous, 1);
  EXPECT_EQ(*SchemaVersion(**db, "notes"), 2);
  std::string author = "unset";
  ASSERT_TRUE((*db)->Run("SELECT author FROM notes WHERE id = 1", {}, [&](const SqlRow& r) { author = r.Text(0); }).ok());
  EXPECT_EQ(author, "") << "the row written at version 1 is still there, with the new column";

  auto again = Migrate(**db, "notes", kMigrations);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 2);
  EXPECT_EQ(*SchemaVersion(**db, "other-store"), 0) << "versions are kept per store";

  auto older_build = Migrate(**db, "notes", std::span(kMigrations, 1));
  ASSERT_FALSE(older_build.ok());
  EXPECT_EQ(older_build.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(older_build.status().message().find("newer than this build's 1"), std::string::npos);
}

TEST(SqliteMigrationsTest, AFailedMigrationLeavesTheLastWholeVersion) {
  testing::TempDir dir;
  auto db = SqliteDb::Open(dir.path() / "m.db");
  ASSERT_TRUE(db.ok());
  auto broken = Migrate(**db, "notes", kBroken);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("notes schema version 2 (a typo)"), std::string::npos)
      << broken.status().message();
  EXPECT_EQ(*SchemaVersion(**db, "notes"), 1);
  // Version 2's first statement was rolled back with it: the fixed migration can add `x`.
  const Migration fixed[] = {kMigrations[0], {"fixed", "ALTER TABLE notes ADD COLUMN x TEXT", ""}};
  EXPECT_TRUE(Migrate(**db, "notes", fixed).ok());
}

class PgMigrationsTest : public ::testing::Test {
 protected:
  static std::unique_ptr<PgDb> FreshDatabase(int connections = 1) {
    const std::string url = testing::FreshPgDatabase();
    if (url.empty()) return nullptr;
    auto db = PgDb::Open(url, connections);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    return db.ok() ? std::move(*db) : nullptr;
  }
};

TEST_F(PgMigrationsTest, FromEmptyFromThePreviousVersionAndNeverBackwards) {
  auto db = FreshDatabase();
  ASSERT_NE(db, nullptr);
  ASSERT_EQ(*Migrate(*db, "notes", std::span(kMigrations, 1)), 0);
  ASSERT_TRUE(db->Exec("INSERT INTO notes (id, body) VALUES (1, 'kept')").ok());
  auto from_previous = Migrate(*db, "notes", kMigrations);
  ASSERT_TRUE(from_previous.ok()) << from_previous.status().ToString();
  EXPECT_EQ(*from_previous, 1);
  EXPECT_EQ(*SchemaVersion(*db, "notes"), 2);
  auto kept = db->Exec("SELECT body, author FROM notes WHERE id = 1");
  ASSERT_TRUE(kept.ok() && kept->rows() == 1);
  EXPECT_EQ(kept->Text(0, 0), "kept");
  auto older_build = Migrate(*db, "notes", std::span(kMigrations, 1));
  ASSERT_FALSE(older_build.ok());
  EXPECT_EQ(older_build.status().code(), StatusCode::kFailedPrecondition);

  auto other = FreshDatabase();
  ASSERT_NE(other, nullptr);
  auto broken = Migrate(*other, "notes", kBroken);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(*SchemaVersion(*other, "notes"), 1);
  auto columns = other->Exec("SELECT count(*) FROM information_schema.columns WHERE table_name = 'notes'");
  EXPECT_EQ(columns->Int(0, 0), 2) << "the failed version's first statement was rolled back";
}

TEST_F(PgMigrationsTest, InstancesStartingAtOnceRunEachMigrationOnce) {
  const std::string url = testing::FreshPgDatabase();
  ASSERT_FALSE(url.empty());
  std::atomic<int> failures{0};
  std::vector<std::thread> instances;
  for (int i = 0; i < 4; ++i) {
    instances.emplace_back([&] {
      auto db = PgDb::Open(url, 1);
      if (!db.ok() || !Migrate(**db, "notes", kMigrations).ok()) ++failures;
    });
  }
  for (auto& t : instances) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto db = PgDb::Open(url, 1);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ((*db)->Exec("SELECT count(*) FROM ran")->Int(0, 0), 1);
  EXPECT_EQ(*SchemaVersion(**db, "notes"), 2);
}

}  // namespace
}  // namespace plyr
