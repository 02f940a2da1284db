#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <fstream>
#include <optional>

#include "common/sqlite_db.h"
#include "tests/support/process.h"

namespace plyr {
namespace {

TEST(SqliteDbTest, RunsStatementsWithParameters) {
  testing::TempDir dir;
  auto db = SqliteDb::Open(dir.path() / "t.db");
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Run("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)").ok());
  ASSERT_TRUE((*db)->Run("INSERT INTO t VALUES (?1, ?2)", {std::string("a"), std::int64_t{42}}).ok());
  std::int64_t v = 0;
  ASSERT_TRUE(
      (*db)->Run("SELECT v FROM t WHERE k = ?1", {std::string("a")}, [&](const SqlRow& r) { v = r.Int(0); }).ok());
  EXPECT_EQ(v, 42);
  const Status duplicate = (*db)->Run("INSERT INTO t VALUES (?1, ?2)", {std::string("a"), std::int64_t{1}});
  EXPECT_EQ(duplicate.code(), StatusCode::kInternal);
  EXPECT_NE(duplicate.message().find("UNIQUE"), std::string::npos) << duplicate.message();
  EXPECT_EQ((*db)->Run("SELEKT 1").code(), StatusCode::kInternal);
}

TEST(SqliteDbTest, AFileThatIsNotADatabaseIsDataLoss) {
  testing::TempDir dir;
  {
    std::ofstream out(dir.path() / "t.db", std::ios::binary);
    out << std::string(4096, 'x');
  }
  auto db = SqliteDb::Open(dir.path() / "t.db");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kDataLoss) << db.status().ToString();
  EXPECT_FALSE(db.status().message().empty());
}

// While alive, no file this process writes may grow past `bytes` (the soft RLIMIT_FSIZE, with
// SIGXFSZ ignored so that such a write fails with EFBIG), as on a full disk.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    saved_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, saved_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  void (*saved_handler_)(int) = SIG_DFL;
};

TEST(SqliteDbTest, AFullDiskIsResourceExhaustedAndWritesResumeWhenSpaceReturns) {
  testing::TempDir dir;
  auto db = SqliteDb::Open(dir.path() / "t.db");
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Run("CREATE TABLE t (v BLOB)").ok());
  const std::string row(16 * 1024, 'x');
  int stored = 0;
  Status full;
  {
    std::optional<FileSizeLimit> limit(std::in_place, 256 * 1024);
    for (int i = 0; i < 64 && full.ok(); ++i) {
      full = (*db)->Run("INSERT INTO t VALUES (?1)", {SqlBlob{row}});
      if (full.ok()) ++stored;
    }
  }
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_NE(full.message().find("disk full"), std::string::npos) << full.message();
  EXPECT_GT(stored, 0);
  // Space is back: the same connection writes again, and nothing acknowledged went missing.
  EXPECT_TRUE((*db)->Run("INSERT INTO t VALUES (?1)", {SqlBlob{row}}).ok());
  int count = -1;
  ASSERT_TRUE(
      (*db)->Run("SELECT count(*) FROM t", {}, [&](const SqlRow& r) { count = static_cast<int>(r.Int(0)); }).ok());
  EXPECT_EQ(count, stored + 1);
}

TEST(SqliteDbTest, UsesWalAndRollsBackFailedTransactions) {
  testing::TempDir dir;
  auto db = SqliteDb::Open(dir.path() / "t.db");
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  std::string mode;
  ASSERT_TRUE((*db)->Run("PRAGMA journal_mode", {}, [&](const SqlRow& r) { mode = r.Text(0); }).ok());
  EXPECT_EQ(mode, "wal");
  ASSERT_TRUE((*db)->Run("CREATE TABLE t (k TEXT)").ok());
  const Status failed = (*db)->Transaction([&] {
    EXPECT_TRUE((*db)->Run("INSERT INTO t VALUES ('x')").ok());
    return Status(StatusCode::kFailedPrecondition, "the body changed its mind");
  });
  // The body's own Status comes back, and nothing it wrote stays.
  EXPECT_EQ(failed.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(failed.message(), "the body changed its mind");
  int count = -1;
  ASSERT_TRUE(
      (*db)->Run("SELECT count(*) FROM t", {}, [&](const SqlRow& r) { count = static_cast<int>(r.Int(0)); }).ok());
  EXPECT_EQ(count, 0);
  EXPECT_TRUE((*db)->Transaction([&] { return (*db)->Run("INSERT INTO t VALUES ('y')"); }).ok());
  ASSERT_TRUE(
      (*db)->Run("SELECT count(*) FROM t", {}, [&](const SqlRow& r) { count = static_cast<int>(r.Int(0)); }).ok());
  EXPECT_EQ(count, 1);
}

}  // namespace
}  // namespace plyr
