// PgDb against a real PostgreSQL server (a throw-away cluster; tests/support/pg_test_server.h).
#include "common/pg_db.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/pg_test_server.h"

namespace plyr {
namespace {

using testing::PgTestServer;

class PgDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::FreshPgDatabase();
    ASSERT_FALSE(url_.empty());
    server_ = testing::SharedPgServer();
  }

  PgTestServer* server_ = nullptr;
  std::string url_;
};

TEST_F(PgDbTest, StatementsTakeParametersAndAnswerRows) {
  auto db = PgDb::Open(url_, 2);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)").ok());
  auto inserted = (*db)->Exec("INSERT INTO t VALUES ($1, $2), ($3, $4)", {"1", "one", "2", std::nullopt});
  ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
  EXPECT_EQ(inserted->affected(), 2);
  auto rows = (*db)->Exec("SELECT id, name FROM t ORDER BY id");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->rows(), 2);
  EXPECT_EQ(rows->Int(0, 0), 1);
  EXPECT_EQ(rows->Text(0, 1), "one");
  EXPECT_TRUE(rows->IsNull(1, 1));

  auto twice = (*db)->Exec("INSERT INTO t VALUES ($1, $2)", {"1", "again"});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().code(), StatusCode::kAlreadyExists) << twice.status().ToString();
  auto wrong = (*db)->Exec("SELEKT 1");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInternal);
  EXPECT_NE(wrong.status().message().find("SQLSTATE 42601"), std::string::npos) << wrong.status().message();
}

TEST_F(PgDbTest, BytesRoundTripThroughBytea) {
  auto db = PgDb::Open(url_, 1);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE b (v BYTEA NOT NULL)").ok());
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  bytes += std::string("\0\\x00'\"", 6);
  ASSERT_TRUE((*db)->Exec("INSERT INTO b VALUES ($1)", {PgBytea(bytes)}).ok());
  auto read = (*db)->Exec("SELECT v, length(v) FROM b");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->Int(0, 1), static_cast<std::int64_t>(bytes.size()));
  EXPECT_EQ(read->Bytes(0, 0), bytes);
}

TEST_F(PgDbTest, AFailedTransactionLeavesNothing) {
  auto db = PgDb::Open(url_, 1);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (id BIGINT PRIMARY KEY)").ok());
  Status failed = (*db)->Transaction([](PgConnection& c) -> Status {
    if (auto s = c.Exec("INSERT INTO t VALUES (1)"); !s.ok()) return s.status();
    return c.Exec("INSERT INTO t VALUES (1)").status();
  });
  EXPECT_EQ(failed.code(), StatusCode::kAlreadyExists) << failed.ToString();
  Status given_up = (*db)->Transaction([](PgConnection& c) -> Status {
    if (auto s = c.Exec("INSERT INTO t VALUES (2)"); !s.ok()) return s.status();
    return Status(StatusCode::kCancelled, "changed my mind");
  });
  EXPECT_EQ(given_up.code(), StatusCode::kCancelled);
  auto count = (*db)->Exec("SELECT count(*) FROM t");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->Int(0, 0), 0);
  // The one connection is usable again after both.
  EXPECT_TRUE((*db)->Transaction([](PgConnection& c) { return c.Exec("INSERT INTO t VALUES (3)").status(); }).ok());
  EXPECT_EQ((*db)->Exec("SELECT count(*) FROM t")->Int(0, 0), 1);
}

TEST_F(PgDbTest, ThreadsShareABoundedPool) {
  auto db = PgDb::Open(url_, 3);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (id BIGINT PRIMARY KEY)").ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (!(*db)->Exec("INSERT INTO t VALUES ($1)", {std::to_string(t * 1000 + i)}).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ((*db)->Exec("SELECT count(*) FROM t")->Int(0, 0), 400);
  auto sessions = (*db)->Exec("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()");
  ASSERT_TRUE(sessions.ok());
  EXPECT_EQ(sessions->Int(0, 0), 3);
}

TEST_F(PgDbTest, AServerRestartIsUnavailableThenReconnects) {
  auto db = PgDb::Open(url_, 1);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  server_->Stop();
  auto down = (*db)->Exec("SELECT 1");
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
  ASSERT_TRUE(server_->Start()) << server_->error();
  ASSERT_EQ(server_->url("x"), url_.substr(0, url_.rfind('/')) + "/x") << "the server came back on another port";
  auto up = (*db)->Exec("SELECT 1");
  EXPECT_TRUE(up.ok()) << up.status().ToString();
}

TEST_F(PgDbTest, AfterAServerRestartTheFirstStatementGoesToAFreshSession) {
  auto db = PgDb::Open(url_, 2);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Exec("SELECT 1").ok());
  server_->Stop();
  ASSERT_TRUE(server_->Start()) << server_->error();
  for (int i = 0; i < 2; ++i) {
    auto first = (*db)->Exec("SELECT 1");
    EXPECT_TRUE(first.ok()) << "statement " << i << ": " << first.status().ToString();
  }
}

TEST(PgDbOpenTest, BadUrlsAndUnreachableServersAreClear) {
  auto malformed = PgDb::Open("postgres://user:secret@[not-closed/db", 1);
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(malformed.status().message().find("secret"), std::string::npos) << "a password is never echoed";
  auto nobody = PgDb::Open("postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2", 1);
  ASSERT_FALSE(nobody.ok());
  EXPECT_EQ(nobody.status().code(), StatusCode::kUnavailable) << nobody.status().ToString();
  EXPECT_FALSE(PgDb::Open("postgres://postgres@127.0.0.1:1/postgres", 0).ok());
}

}  // namespace
}  // namespace plyr
