// The reference store's contract, run against both implementations: SQLite (a file in a
// temporary folder) and PostgreSQL (a throw-away cluster, tests/support/pg_test_server.h).
#include "fingerprint/reference_store.h"

#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "common/pg_db.h"
#include "common/pg_listener.h"
#include "common/sqlite_db.h"
#include "tests/support/pg_test_server.h"
#include "tests/support/process.h"

namespace plyr::fingerprint {
namespace {

using plyr::testing::TempDir;

ReferenceRecord Record(const std::string& id, unsigned seed, std::size_t items = 400) {
  ReferenceRecord r;
  r.id = id;
  r.title = "Title " + id;
  r.artist = "Artist";
  r.owner_did = "did:plc:owner";
  r.isrc = "USRC1700000" + std::to_string(seed % 10);
  r.external_ids_json = R"({"mbid":"x"})";
  r.duration_s = 12.345;
  r.created_ms = 1700000000000 + seed;
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < items; ++i) r.items.push_back(static_cast<std::uint32_t>(rng()));
  return r;
}

class ReferenceStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      url_ = plyr::testing::FreshPgDatabase();
      ASSERT_FALSE(url_.empty());
    }
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  // A store on the same data as the last one: what a restarted process sees.
  std::unique_ptr<ReferenceStore> Open() {
    if (GetParam() == "sqlite") {
      auto db = SqliteDb::Open(dir_.path() / "references.db");
      EXPECT_TRUE(db.ok()) << db.status().ToString();
      if (!db.ok()) return nullptr;
      auto store = OpenSqliteReferenceStore(std::move(*db));
      EXPECT_TRUE(store.ok()) << store.status().ToString();
      return store.ok() ? std::move(*store) : nullptr;
    }
    auto db = PgDb::Open(url_, 2);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    if (!db.ok()) return nullptr;
    auto store = OpenPgReferenceStore(std::shared_ptr<PgDb>(std::move(*db)));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }


  TempDir dir_;
  std::string url_;
  std::unique_ptr<ReferenceStore> store_;
};


TEST_P(ReferenceStoreTest, ARegisteredReferenceReadsBackWholeAndSurvivesAReopen) {
  ReferenceRecord a = Record("00000000000000a1", 1);
  ASSERT_TRUE(store_->Insert(a).ok());
  EXPECT_GT(a.row, 0);
  EXPECT_EQ(a.items_hash, ReferenceStore::HashItems(a.items));
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  auto got = store_->Get("00000000000000a1", true);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->row, a.row);
  EXPECT_EQ(got->title, a.title);
  EXPECT_EQ(got->owner_did, a.owner_did);
  EXPECT_EQ(got->isrc, a.isrc);
  EXPECT_EQ(got->external_ids_json, a.external_ids_json);
  EXPECT_DOUBLE_EQ(got->duration_s, 12.345);
  EXPECT_EQ(got->created_ms, a.created_ms);
  EXPECT_EQ(got->items, a.items);
  auto without = store_->Get("00000000000000a1", false);
  ASSERT_TRUE(without.ok());
  EXPECT_TRUE(without->items.empty());
  EXPECT_EQ(store_->Get("00000000000000ff", false).status().code(), StatusCode::kNotFound);
}

TEST_P(ReferenceStoreTest, TheSameFingerprintTwiceIsRefusedNamingTheFirst) {
  ReferenceRecord a = Record("00000000000000a1", 1);
  ASSERT_TRUE(store_->Insert(a).ok());
  ReferenceRecord again = Record("00000000000000a2", 1);
  const Status twice = store_->Insert(again);
  EXPECT_EQ(twice.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(twice.message().find("00000000000000a1"), std::string::npos) << twice.message();

  std::vector<ReferenceRecord> batch = {Record("00000000000000b1", 2), Record("00000000000000b2", 1)};
  EXPECT_EQ(store_->InsertMany(batch).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->Get("00000000000000b1", false).status().code(), StatusCode::kNotFound)
      << "nothing of a refused batch is stored";
}

TEST_P(ReferenceStoreTest, ListingIsNewestFirstInPagesAndLoadingIsInRowOrder) {
  std::vector<ReferenceRecord> batch;
  for (unsigned i = 0; i < 25; ++i) batch.push_back(Record("00000000000001" + std::to_string(10 + i), 100 + i, 50));
  ASSERT_TRUE(store_->InsertMany(batch).ok());
  for (std::size_t i = 1; i < batch.size(); ++i) EXPECT_GT(batch[i].row, batch[i - 1].row);

  auto first = store_->List(0, 10);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 10u);
  EXPECT_EQ(first->front().id, batch.back().id);
  auto second = store_->List(first->back().row, 100);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 15u);
  EXPECT_EQ(second->back().id, batch.front().id);

  std::vector<ReferenceRecord> loaded;
  int batches = 0;
  ASSERT_TRUE(store_
                  ->LoadAll(
                      [&](std::vector<ReferenceRecord>&& part) {
                        ++batches;
                        for (auto& r : part) loaded.push_back(std::move(r));
                      },
                      10)
                  .ok());
  EXPECT_EQ(batches, 3);
  ASSERT_EQ(loaded.size(), batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(loaded[i].id, batch[i].id);
    EXPECT_EQ(loaded[i].items, batch[i].items);
  }
}

TEST_P(ReferenceStoreTest, ADeleteIsFinal) {
  ReferenceRecord a = Record("00000000000000a1", 1);
  ASSERT_TRUE(store_->Insert(a).ok());
  ASSERT_TRUE(store_->Delete("00000000000000a1").ok());
  EXPECT_EQ(store_->Delete("00000000000000a1").code(), StatusCode::kNotFound);
  store_ = Open();
  EXPECT_EQ(store_->Get("00000000000000a1", false).status().code(), StatusCode::kNotFound);
  // The same work can be registered again once deleted, under a new row.
  ReferenceRecord again = Record("00000000000000a3", 1);
  ASSERT_TRUE(store_->Insert(again).ok());
  EXPECT_GT(again.row, a.row);
}

TEST_P(ReferenceStoreTest, RowsListWhatIsStoredAndGetRowsReadsThemWhole) {
  std::vector<ReferenceRecord> batch = {Record("00000000000000c1", 31), Record("00000000000000c2", 32),
                                        Record("00000000000000c3", 33)};
  ASSERT_TRUE(store_->InsertMany(batch).ok());
  ASSERT_TRUE(store_->Delete("00000000000000c2").ok());
  auto rows = store_->Rows();
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(*rows, (std::vector<std::int64_t>{batch[0].row, batch[2].row}));
  auto got = store_->GetRows({batch[2].row, batch[1].row, batch[0].row, 999999});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].id, "00000000000000c1");
  EXPECT_EQ((*got)[1].items, batch[2].items);
}

TEST(ReferenceStoreOnPostgresTest, EveryCommittedChangeIsAnnounced) {
  const std::string url = plyr::testing::FreshPgDatabase();
  ASSERT_FALSE(url.empty());
  auto db = PgDb::Open(url, 1);
  ASSERT_TRUE(db.ok());
  auto store = OpenPgReferenceStore(std::shared_ptr<PgDb>(std::move(*db)));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::mutex mutex;
  std::vector<std::string> heard;
  auto listener = PgListener::Start(url, std::string(kReferenceChannel), [&](bool resync, const std::string& payload) {
    std::lock_guard lock(mutex);
    if (!resync) heard.push_back(payload);
  });
  ASSERT_TRUE(listener.ok());
  const auto wait_for = [&](std::size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mutex);
        if (heard.size() >= n) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  // Changes before the listener listens would not be heard.
  while ((*listener)->connections() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ReferenceRecord a = Record("00000000000000d1", 41);
  ASSERT_TRUE((*store)->Insert(a).ok());
  ReferenceRecord twice = Record("00000000000000d2", 41);
  EXPECT_EQ((*store)->Insert(twice).code(), StatusCode::kAlreadyExists);
  std::vector<ReferenceRecord> batch = {Record("00000000000000d3", 42)};
  ASSERT_TRUE((*store)->InsertMany(batch).ok());
  ASSERT_TRUE((*store)->Delete("00000000000000d1").ok());
  ASSERT_TRUE(wait_for(3));
  std::lock_guard lock(mutex);
  EXPECT_EQ(heard, (std::vector<std::string>{"add " + std::to_string(a.row), "add " + std::to_string(batch[0].row),
                                             "del " + std::to_string(a.row)}))
      << "a refused insert announces nothing";
}

INSTANTIATE_TEST_SUITE_P(Backends, ReferenceStoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace plyr::fingerprint
