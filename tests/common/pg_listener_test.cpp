// PgListener against a real PostgreSQL server (the shared throw-away cluster).
#include "common/pg_listener.h"

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/pg_db.h"
#include "tests/support/pg_test_server.h"

namespace plyr {
namespace {

using namespace std::chrono_literals;

// What the callback saw, for the test thread to wait on.
struct Seen {
  std::mutex mutex;
  std::vector<std::string> payloads;  // "(resync)" for a resync
  std::size_t Count() {
    std::lock_guard lock(mutex);
    return payloads.size();
  }
  bool WaitFor(std::size_t n, std::chrono::milliseconds bound = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Count() >= n) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  std::vector<std::string> Copy() {
    std::lock_guard lock(mutex);
    return payloads;
  }
};

TEST(PgListenerTest, NotificationsArriveInCommitOrderAndAReconnectAsksForAResync) {
  const std::string url = testing::FreshPgDatabase();
  ASSERT_FALSE(url.empty());
  auto db = PgDb::Open(url, 1);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  Seen seen;
  auto listener = PgListener::Start(url, "plyr_test", [&](bool resync, const std::string& payload) {
    std::lock_guard lock(seen.mutex);
    seen.payloads.push_back(resync ? "(resync)" : payload);
  });
  ASSERT_TRUE(listener.ok()) << listener.status().ToString();
  ASSERT_TRUE(seen.WaitFor(1));
  EXPECT_EQ(seen.Copy()[0], "(resync)") << "the first connection asks for a sync of what came before";

  for (int i = 0; i < 50; ++i) ASSERT_TRUE((*db)->Exec("SELECT pg_notify('plyr_test', $1)", {std::to_string(i)}).ok());
  // One sent by a transaction that rolls back is never delivered.
  EXPECT_EQ((*db)->Transaction([](PgConnection& c) -> Status {
                 if (auto s = c.Exec("SELECT pg_notify('plyr_test', 'rolled back')"); !s.ok()) return s.status();
                 return Status(StatusCode::kCancelled, "no");
               }).code(),
            StatusCode::kCancelled);
  ASSERT_TRUE((*db)->Exec("SELECT pg_notify('plyr_test', 'last')").ok());
  ASSERT_TRUE(seen.WaitFor(52));
  const auto got = seen.Copy();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i) + 1], std::to_string(i));
  EXPECT_EQ(got[51], "last");

  // The server goes away and comes back: the listener reconnects and asks for a resync.
  testing::PgTestServer* server = testing::SharedPgServer();
  server->Stop();
  ASSERT_TRUE(server->Start()) << server->error();
  ASSERT_TRUE(seen.WaitFor(53, 15s));
  EXPECT_EQ(seen.Copy()[52], "(resync)");
  EXPECT_EQ((*listener)->connections(), 2);
  ASSERT_TRUE((*db)->Exec("SELECT pg_notify('plyr_test', 'after')").ok());
  ASSERT_TRUE(seen.WaitFor(54));
  EXPECT_EQ(seen.Copy()[53], "after");
}

TEST(PgListenerTest, AChannelMustBeAnIdentifier) {
  auto bad = PgListener::Start("postgres://x@127.0.0.1:1/x", "drop table; --", [](bool, const std::string&) {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace plyr
