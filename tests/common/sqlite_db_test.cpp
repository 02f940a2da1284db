#include <gtest/gtest.h>

#include "common/sqlite_db.h"
#include "tests/support/process.h"

namespace plyr {
namespace {

TEST(SqliteDbTest, RunsStatementsWithParameters) {
  testing::TempDir dir;
  std::string error;
  auto db = SqliteDb::Open(dir.path() / "t.db", &error);
  ASSERT_TRUE(db) << error;
  ASSERT_TRUE((*db)->Run("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"));
  ASSERT_TRUE((*db)->Run("INSERT INTO t VALUES (?1, ?2)", {std::string("a"), std::int64_t{42}}));
  std::int64_t v = 0;
  ASSERT_TRUE((*db)->Run("SELECT v FROM t WHERE k = ?1", {std::string("a")}, [&](const SqlRow& r) { v = r.Int(0); }));
  EXPECT_EQ(v, 42);
  EXPECT_FALSE((*db)->Run("INSERT INTO t VALUES (?1, ?2)", {std::string("a"), std::int64_t{1}}));
  EXPECT_NE((*db)->last_error().find("UNIQUE"), std::string::npos);
}

TEST(SqliteDbTest, UsesWalAndRollsBackFailedTransactions) {
  testing::TempDir dir;
  std::string error;
  auto db = SqliteDb::Open(dir.path() / "t.db", &error);
  ASSERT_TRUE(db);
  std::string mode;
  (*db)->Run("PRAGMA journal_mode", {}, [&](const SqlRow& r) { mode = r.Text(0); });
  EXPECT_EQ(mode, "wal");
  ASSERT_TRUE((*db)->Run("CREATE TABLE t (k TEXT)"));
  EXPECT_FALSE((*db)->Transaction([&] {
    (*db)->Run("INSERT INTO t VALUES ('x')");
    return false;
  }));
  int count = -1;
  (*db)->Run("SELECT count(*) FROM t", {}, [&](const SqlRow& r) { count = static_cast<int>(r.Int(0)); });
  EXPECT_EQ(count, 0);
}

}  // namespace
}  // namespace plyr
