#include "labeler/label_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "common/pg_db.h"
#include "common/sqlite_db.h"
#include "tests/support/pg_test_server.h"
#include "tests/support/process.h"

namespace plyr::labeler {
namespace {

constexpr const char* kSrc = "did:plc:labeler";
constexpr const char* kOtherSrc = "did:plc:someoneelse";

// Signatures and CBOR are opaque to the store: any bytes do, as long as they round-trip.
StoredLabel MakeLabel(std::string uri, std::string val = "spam", bool neg = false,
                      std::optional<std::string> exp = std::nullopt, std::string src = kSrc) {
  static std::atomic<unsigned> counter{0};
  const unsigned n = counter++;
  StoredLabel stored;
  stored.label.src = std::move(src);
  stored.label.uri = std::move(uri);
  stored.label.val = std::move(val);
  stored.label.neg = neg;
  stored.label.cts = "2026-01-01T00:00:00.000Z";
  stored.label.exp = std::move(exp);
  stored.label.sig.resize(64);
  for (std::size_t i = 0; i < 64; ++i) stored.label.sig[i] = static_cast<char>((n * 31 + i * 7) & 0xff);
  // Embedded NULs and high bytes, as real CBOR has.
  stored.cbor = std::string("\xa9", 1);
  stored.cbor.push_back('\0');
  stored.cbor += stored.label.uri;
  stored.cbor.push_back('\0');
  stored.cbor += std::to_string(n);
  return stored;
}

// The same suite runs on SQLite and, built with PLYR_TEST_LABELS_ON_POSTGRES, on PostgreSQL (a
// fresh database per log path, so "reopening a path" reaches the same log).
#ifdef PLYR_TEST_LABELS_ON_POSTGRES
constexpr bool kOnPostgres = true;
#else
constexpr bool kOnPostgres = false;
#endif

const std::string& PgUrlFor(const std::filesystem::path& path) {
  static std::map<std::string, std::string> urls;
  auto& url = urls[path.string()];
  if (url.empty()) url = testing::FreshPgDatabase();
  return url;
}

std::unique_ptr<LabelStore> OpenStore(const std::filesystem::path& path, LabelStoreOptions options = {}) {
  StatusOr<std::unique_ptr<LabelStore>> store = Status(StatusCode::kInternal, "unset");
  if (kOnPostgres) {
    auto db = PgDb::Open(PgUrlFor(path), 2);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    if (!db.ok()) return nullptr;
    store = LabelStore::OpenPostgres(std::shared_ptr<PgDb>(std::move(*db)), options);
  } else {
    store = LabelStore::Open(path, options);
  }
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

// Runs statements on the log's database behind the store's back (an operator, a failing disk).
Status RunOn(const std::filesystem::path& path, const std::vector<std::string>& sqlite,
             const std::vector<std::string>& postgres) {
  if (kOnPostgres) {
    auto db = PgDb::Open(PgUrlFor(path), 1);
    if (!db.ok()) return db.status();
    for (const auto& sql : postgres) {
      if (auto done = (*db)->Exec(sql); !done.ok()) return done.status();
    }
    return OkStatus();
  }
  auto db = SqliteDb::Open(path);
  if (!db.ok()) return db.status();
  for (const auto& sql : sqlite) {
    if (Status done = (*db)->Run(sql); !done.ok()) return done;
  }
  return OkStatus();
}

StatusOr<std::vector<std::int64_t>> AppendAndWait(LabelStore& store, std::vector<StoredLabel> labels) {
  std::promise<StatusOr<std::vector<std::int64_t>>> promise;
  auto future = promise.get_future();
  store.Append(std::move(labels), [&](StatusOr<std::vector<std::int64_t>> result) {
    promise.set_value(std::move(result));
  });
  return future.get();
}

std::vector<std::int64_t> AppendOk(LabelStore& store, std::vector<StoredLabel> labels) {
  auto result = AppendAndWait(store, std::move(labels));
  EXPECT_TRUE(result) << result.status().message();
  return result ? *result : std::vector<std::int64_t>{};
}

std::vector<std::string> Uris(const std::vector<StoredLabel>& labels) {
  std::vector<std::string> uris;
  for (const auto& l : labels) uris.push_back(l.label.uri);
  return uris;
}

std::vector<StoredLabel> QueryOk(LabelStore& store, LabelQuery query) {
  auto result = store.Query(query);
  EXPECT_TRUE(result) << result.status().message();
  return result ? *result : std::vector<StoredLabel>{};
}

std::int64_t CountRows(const std::filesystem::path& path) {
  if (kOnPostgres) {
    auto db = PgDb::Open(PgUrlFor(path), 1);
    if (!db.ok()) return -1;
    auto rows = (*db)->Exec("SELECT count(*) FROM labeler_labels");
    return rows.ok() ? rows->Int(0, 0) : -1;
  }
  auto db = SqliteDb::Open(path);
  if (!db.ok()) return -1;
  std::int64_t count = -1;
  if (!(*db)->Run("SELECT count(*) FROM labels", {}, [&](const SqlRow& row) { count = row.Int(0); }).ok()) return -1;
  return count;
}

// Holds the writer thread inside the commit listener until released, so appends queued meanwhile
// are taken together into the next batch.
class WriterGate {
 public:
  void Hold(LabelStore& store, std::vector<std::size_t>* batch_sizes) {
    store.SetCommitListener([this, batch_sizes](const std::vector<StoredLabel>& labels) {
      batch_sizes->push_back(labels.size());
      if (!held_.exchange(true)) {
        entered_.set_value();
        release_.get_future().wait();
      }
    });
  }
  void WaitEntered() { entered_.get_future().wait(); }
  void Release() { release_.set_value(); }

 private:
  std::atomic<bool> held_{false};
  std::promise<void> entered_;
  std::promise<void> release_;
};

TEST(LabelStoreTest, SeqIncreasesAcrossAppendsAndReopen) {
  testing::TempDir dir;
  const auto path = dir.path() / "labels.db";
  std::vector<std::int64_t> all;
  {
    auto store = OpenStore(path);
    ASSERT_TRUE(store);
    EXPECT_EQ(store->head_seq(), 0);
    auto first = AppendOk(*store, {MakeLabel("at://a/1"), MakeLabel("at://a/2")});
    auto second = AppendOk(*store, {MakeLabel("at://a/3")});
    ASSERT_EQ(first.size(), 2u);
    ASSERT_EQ(second.size(), 1u);
    all.insert(all.end(), first.begin(), first.end());
    all.insert(all.end(), second.begin(), second.end());
    EXPECT_EQ(store->head_seq(), all.back());
  }
  auto store = OpenStore(path);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->head_seq(), all.back());
  auto third = AppendOk(*store, {MakeLabel("at://a/4")});
  ASSERT_EQ(third.size(), 1u);
  all.push_back(third[0]);
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i], all[i - 1]);
  EXPECT_GT(all.front(), 0);
}

TEST(LabelStoreTest, SeqIsNeverReusedAfterRowsAreDeleted) {
  testing::TempDir dir;
  const auto path = dir.path() / "labels.db";
  std::int64_t last = 0;
  {
    auto store = OpenStore(path);
    ASSERT_TRUE(store);
    auto seqs = AppendOk(*store, {MakeLabel("at://a/1"), MakeLabel("at://a/2"), MakeLabel("at://a/3")});
    ASSERT_EQ(seqs.size(), 3u);
    last = seqs.back();
  }
  ASSERT_TRUE(RunOn(path, {"DELETE FROM labels"}, {"DELETE FROM labeler_labels"}).ok());
  auto store = OpenStore(path);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->head_seq(), last);  // the highest seq handed out, not what remains
  auto seqs = AppendOk(*store, {MakeLabel("at://a/4")});
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs[0], last + 1);
}

// The restore procedure of docs/operations.md: an older log whose sequence the operator moved past
// every seq already served starts at that head, so no seq is handed out twice.
TEST(LabelStoreTest, ARestoredLogStartsAtTheSequenceTheOperatorSet) {
  testing::TempDir dir;
  const auto path = dir.path() / "labels.db";
  {
    auto store = OpenStore(path);
    ASSERT_TRUE(store);
    ASSERT_EQ(AppendOk(*store, {MakeLabel("at://a/1"), MakeLabel("at://a/2")}).size(), 2u);
  }
  ASSERT_TRUE(RunOn(path, {"UPDATE sqlite_sequence SET seq = MAX(seq, 5000) WHERE name = 'labels'"},
                    {"UPDATE labeler_log_head SET seq = GREATEST(seq, 5000)"})
                  .ok());
  auto store = OpenStore(path);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->head_seq(), 5000);
  auto seqs = AppendOk(*store, {MakeLabel("at://a/3")});
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_EQ(seqs[0], 5001);
}

TEST(LabelStoreTest, RefusesANewerSchemaVersion) {
  if (kOnPostgres) GTEST_SKIP() << "SQLite's own version mark (PostgreSQL's is schema_migrations, tested there)";
  testing::TempDir dir;
  const auto path = dir.path() / "labels.db";
  {
    auto db = SqliteDb::Open(path);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE((*db)->Run("PRAGMA user_version = 99").ok());
  }
  auto store = LabelStore::Open(path, {});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("newer"), std::string::npos) << store.status().message();
}

TEST(LabelStoreTest, CommitListenerSeesDurableLabelsInSeqOrderBeforeCallbacks) {
  testing::TempDir dir;
  const auto path = dir.path() / "labels.db";
  auto store = OpenStore(path);
  ASSERT_TRUE(store);
  std::mutex mutex;
  std::vector<std::int64_t> heard;
  std::vector<std::string> events;
  bool visible_elsewhere = true;
  bool head_caught_up = true;
  store->SetCommitListener([&](const std::vector<StoredLabel>& labels) {
    // Committed means another connection already sees the rows.
    const std::int64_t rows = CountRows(path);
    std::lock_guard lock(mutex);
    for (const auto& l : labels) {
      heard.push_back(l.seq);
      head_caught_up = head_caught_up && store->head_seq() >= l.seq;
    }
    visible_elsewhere = visible_elsewhere && rows >= static_cast<std::int64_t>(heard.size());
    events.push_back("commit");
  });
  std::vector<std::future<void>> waits;
  std::vector<std::int64_t> returned;
  for (int i = 0; i < 20; ++i) {
    auto promise = std::make_shared<std::promise<void>>();
    waits.push_back(promise->get_future());
    store->Append({MakeLabel("at://x/" + std::to_string(i)), MakeLabel("at://y/" + std::to_string(i))},
                  [&, promise](StatusOr<std::vector<std::int64_t>> result) {
                    EXPECT_TRUE(result);
                    if (result) {
                      std::lock_guard lock(mutex);
                      events.push_back("done");
                      returned.insert(returned.end(), result->begin(), result->end());
                    }
                    promise->set_value();
                  });
  }
  for (auto& w : waits) w.get();
  std::lock_guard lock(mutex);
  ASSERT_EQ(heard.size(), 40u);
  for (std::size_t i = 1; i < heard.size(); ++i) EXPECT_GT(heard[i], heard[i - 1]);
  EXPECT_EQ(heard, returned);
  EXPECT_TRUE(visible_elsewhere);
  EXPECT_TRUE(head_caught_up);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front(), "commit");
}

TEST(LabelStoreTest, GroupCommitNeverSplitsAnAppend) {
  testing::TempDir dir;
  LabelStoreOptions options;
  options.max_batch = 4;
  auto store = OpenStore(dir.path() / "labels.db", options);
  ASSERT_TRUE(store);
  std::vector<std::size_t> batches;
  WriterGate gate;
  gate.Hold(*store, &batches);
  std::vector<std::future<StatusOr<std::vector<std::int64_t>>>> results;
  auto append = [&](std::vector<StoredLabel> labels) {
    auto promise = std::make_shared<std::promise<StatusOr<std::vector<std::int64_t>>>>();
    results.push_back(promise->get_future());
    store->Append(std::move(labels), [promise](auto result) { promise->set_value(std::move(result)); });
  };
  append({MakeLabel("at://g/0")});
  gate.WaitEntered();
  // Queued while the writer is held: 3 + 3 exceeds max_batch, so two transactions; then one
  // Append of 6 on its own (larger than max_batch, still whole); then 1 + 1 + 1 together.
  append({MakeLabel("at://g/1"), MakeLabel("at://g/2"), MakeLabel("at://g/3")});
  append({MakeLabel("at://g/4"), MakeLabel("at://g/5"), MakeLabel("at://g/6")});
  std::vector<StoredLabel> six;
  for (int i = 0; i < 6; ++i) six.push_back(MakeLabel("at://g/big" + std::to_string(i)));
  append(std::move(six));
  append({MakeLabel("at://g/7")});
  append({MakeLabel("at://g/8")});
  append({MakeLabel("at://g/9")});
  gate.Release();
  std::vector<std::int64_t> all;
  for (auto& f : results) {
    auto result = f.get();
    ASSERT_TRUE(result);
    for (std::size_t i = 1; i < result->size(); ++i) EXPECT_EQ((*result)[i], (*result)[i - 1] + 1);
    all.insert(all.end(), result->begin(), result->end());
  }
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i], all[i - 1]);
  EXPECT_EQ(batches, (std::vector<std::size_t>{1, 3, 3, 6, 3}));
}

TEST(LabelStoreTest, FailedTransactionFailsEveryRequestInTheBatch) {
  testing::TempDir dir;
  const auto path = dir.path() / "labels.db";
  auto store = OpenStore(path);
  ASSERT_TRUE(store);
  // A trigger stands in for a failing disk: any insert of val "boom" aborts the transaction.
  ASSERT_TRUE(RunOn(path,
                    {"CREATE TRIGGER boom BEFORE INSERT ON labels WHEN NEW.val = 'boom' "
                     "BEGIN SELECT RAISE(ABORT, 'boom'); END"},
                    {"CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$BEGIN IF NEW.val = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END$$",
                     "CREATE TRIGGER boom BEFORE INSERT ON labeler_labels FOR EACH ROW EXECUTE FUNCTION boom()"})
                  .ok());
  std::vector<std::size_t> batches;
  WriterGate gate;
  gate.Hold(*store, &batches);
  std::promise<void> first_done;
  store->Append({MakeLabel("at://f/0")}, [&](auto result) {
    EXPECT_TRUE(result);
    first_done.set_value();
  });
  gate.WaitEntered();
  const std::int64_t head = store->head_seq();
  std::promise<StatusOr<std::vector<std::int64_t>>> good, bad;
  store->Append({MakeLabel("at://f/1"), MakeLabel("at://f/2")}, [&](auto result) { good.set_value(result); });
  store->Append({MakeLabel("at://f/3", "boom")}, [&](auto result) { bad.set_value(result); });
  gate.Release();
  first_done.get_future().wait();
  auto good_result = good.get_future().get();
  auto bad_result = bad.get_future().get();
  EXPECT_FALSE(good_result);
  EXPECT_FALSE(bad_result);
  EXPECT_EQ(store->head_seq(), head);
  EXPECT_EQ(batches, (std::vector<std::size_t>{1}));
  EXPECT_EQ(CountRows(path), 1);
  // The writer carries on.
  auto seqs = AppendOk(*store, {MakeLabel("at://f/4")});
  ASSERT_EQ(seqs.size(), 1u);
  EXPECT_GT(seqs[0], head);
  EXPECT_EQ(store->head_seq(), seqs[0]);
}

TEST(LabelStoreTest, RefusesUnsignedLabelsAndUnreadableExpiry) {
  testing::TempDir dir;
  const auto path = dir.path() / "labels.db";
  auto store = OpenStore(path);
  ASSERT_TRUE(store);
  auto unsigned_label = MakeLabel("at://u/1");
  unsigned_label.label.sig.clear();
  auto result = AppendAndWait(*store, {MakeLabel("at://u/0"), unsigned_label});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  result = AppendAndWait(*store, {MakeLabel("at://u/2", "spam", false, "tomorrow")});
  EXPECT_FALSE(result);
  EXPECT_EQ(CountRows(path), 0);
  EXPECT_EQ(store->head_seq(), 0);
  auto empty = AppendAndWait(*store, {});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(LabelStoreTest, ConcurrentAppendsAllCompleteWithDistinctSeqs) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  constexpr int kThreads = 8;
  constexpr int kAppendsPerThread = 100;
  std::mutex mutex;
  std::map<std::string, std::int64_t> seq_by_uri;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<void>> waits;
      for (int i = 0; i < kAppendsPerThread; ++i) {
        std::vector<StoredLabel> labels;
        for (int k = 0; k <= i % 3; ++k) {
          labels.push_back(
              MakeLabel("at://c/" + std::to_string(t) + "/" + std::to_string(i) + "/" + std::to_string(k)));
        }
        auto uris = Uris(labels);
        auto promise = std::make_shared<std::promise<void>>();
        waits.push_back(promise->get_future());
        store->Append(std::move(labels), [&, uris, promise](StatusOr<std::vector<std::int64_t>> result) {
          EXPECT_TRUE(result);
          if (result) {
            EXPECT_EQ(result->size(), uris.size());
            std::lock_guard lock(mutex);
            for (std::size_t k = 0; k < uris.size() && k < result->size(); ++k) seq_by_uri[uris[k]] = (*result)[k];
          }
          promise->set_value();
        });
      }
      for (auto& w : waits) w.get();
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::int64_t> distinct;
  for (const auto& [uri, seq] : seq_by_uri) distinct.insert(seq);
  EXPECT_EQ(distinct.size(), seq_by_uri.size());
  EXPECT_EQ(seq_by_uri.size(), static_cast<std::size_t>(kThreads * (34 * 1 + 33 * 2 + 33 * 3)));
  EXPECT_EQ(store->head_seq(), *distinct.rbegin());

  auto all = store->ReadAfter(0, 100000);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), seq_by_uri.size());
  for (const auto& stored : *all) {
    auto it = seq_by_uri.find(stored.label.uri);
    ASSERT_NE(it, seq_by_uri.end()) << stored.label.uri;
    EXPECT_EQ(it->second, stored.seq);
  }
}

TEST(LabelStoreTest, DestructorFinishesQueuedAppends) {
  testing::TempDir dir;
  const auto path = dir.path() / "labels.db";
  std::atomic<int> done{0};
  {
    auto store = OpenStore(path);
    ASSERT_TRUE(store);
    for (int i = 0; i < 200; ++i) {
      store->Append({MakeLabel("at://d/" + std::to_string(i))}, [&](auto result) {
        EXPECT_TRUE(result);
        ++done;
      });
    }
  }
  EXPECT_EQ(done.load(), 200);
  EXPECT_EQ(CountRows(path), 200);
}

TEST(LabelStoreTest, ReadAfterPagesCoverEverythingExactlyOnce) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  std::vector<StoredLabel> labels;
  for (int i = 0; i < 1000; ++i) labels.push_back(MakeLabel("at://p/" + std::to_string(i)));
  auto seqs = AppendOk(*store, labels);
  ASSERT_EQ(seqs.size(), 1000u);
  std::vector<std::int64_t> seen;
  std::int64_t cursor = 0;
  for (;;) {
    auto page = store->ReadAfter(cursor, 77);
    ASSERT_TRUE(page);
    if (page->empty()) break;
    EXPECT_LE(page->size(), 77u);
    for (const auto& stored : *page) seen.push_back(stored.seq);
    cursor = page->back().seq;
  }
  EXPECT_EQ(seen, seqs);
  auto none = store->ReadAfter(store->head_seq(), 10);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  auto zero = store->ReadAfter(0, 0);
  ASSERT_TRUE(zero);
  EXPECT_TRUE(zero->empty());
}

TEST(LabelStoreTest, StoredBytesRoundTripExactly) {
  testing::TempDir dir;
  const auto path = dir.path() / "labels.db";
  StoredLabel full = MakeLabel("at://did:plc:abc/fm.plyr.track/3k\xc3\xa9", "copyright-violation", true,
                               "2999-12-31T23:59:59.999+01:00");
  full.label.cid = "bafyreigh2akiscaildc";
  full.label.cts = "2026-11-25T14:05:10.123456Z";  // kept as signed, not normalized
  for (int i = 0; i < 64; ++i) full.label.sig[i] = static_cast<char>(i == 0 ? 0 : 256 - i * 4);
  full.cbor.clear();
  for (int i = 0; i < 512; ++i) full.cbor.push_back(static_cast<char>(i & 0xff));
  StoredLabel plain = MakeLabel("did:plc:bare");
  {
    auto store = OpenStore(path);
    ASSERT_TRUE(store);
    AppendOk(*store, {full, plain});
  }
  auto store = OpenStore(path);  // from disk, not from any cache
  ASSERT_TRUE(store);
  auto read = store->ReadAfter(0, 10);
  ASSERT_TRUE(read);
  ASSERT_EQ(read->size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const StoredLabel& want = i == 0 ? full : plain;
    const StoredLabel& got = (*read)[i];
    EXPECT_EQ(got.label.src, want.label.src);
    EXPECT_EQ(got.label.uri, want.label.uri);
    EXPECT_EQ(got.label.cid, want.label.cid);
    EXPECT_EQ(got.label.val, want.label.val);
    EXPECT_EQ(got.label.neg, want.label.neg);
    EXPECT_EQ(got.label.cts, want.label.cts);
    EXPECT_EQ(got.label.exp, want.label.exp);
    EXPECT_EQ(got.label.sig, want.label.sig);
    EXPECT_EQ(got.label.sig.size(), 64u);
    EXPECT_EQ(got.cbor, want.cbor);
  }
  EXPECT_FALSE((*read)[1].label.cid.has_value());
  EXPECT_FALSE((*read)[1].label.exp.has_value());
  // queryLabels returns the same bytes.
  auto queried = QueryOk(*store, {.uri_patterns = {full.label.uri}});
  ASSERT_EQ(queried.size(), 1u);
  EXPECT_EQ(queried[0].cbor, full.cbor);
  EXPECT_EQ(queried[0].label.sig, full.label.sig);
}

class LabelStoreQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(dir_.path() / "labels.db");
    ASSERT_TRUE(store_);
    AppendOk(*store_, {
                          MakeLabel("at://did:plc:abc/post/1"),                 // 1
                          MakeLabel("at://did:plc:abc/post/2"),                 // 2
                          MakeLabel("at://did:plc:ABC/post/3"),                 // 3
                          MakeLabel("at://did:plc:abd/post/4"),                 // 4
                          MakeLabel("at://did:plc:a_c/post/5"),                 // 5
                          MakeLabel("at://did:plc:a%c/post/6"),                 // 6
                          MakeLabel("at://did:plc:abc/post/7", "x", false, std::nullopt, kOtherSrc),  // 7
                          MakeLabel("did:plc:abc"),                             // 8
                          MakeLabel("at://did:plc:abc/post/1", "spam", true),  // 9
                      });
  }
  std::vector<std::string> Run(LabelQuery query) { return Uris(QueryOk(*store_, std::move(query))); }

  testing::TempDir dir_;
  std::unique_ptr<LabelStore> store_;
};

TEST_F(LabelStoreQueryTest, ExactMatchReturnsEveryEventForTheUri) {
  EXPECT_EQ(Run({.uri_patterns = {"at://did:plc:abc/post/1"}}),
            (std::vector<std::string>{"at://did:plc:abc/post/1", "at://did:plc:abc/post/1"}));
  EXPECT_EQ(Run({.uri_patterns = {"did:plc:abc"}}), (std::vector<std::string>{"did:plc:abc"}));
  EXPECT_TRUE(Run({.uri_patterns = {"at://did:plc:abc/post"}}).empty());
  EXPECT_TRUE(Run({.uri_patterns = {}}).empty());
}

TEST_F(LabelStoreQueryTest, PrefixIncludesThePrefixItselfAndKeepsSeqOrder) {
  EXPECT_EQ(Run({.uri_patterns = {"did:plc:abc*"}}), (std::vector<std::string>{"did:plc:abc"}));
  EXPECT_EQ(Run({.uri_patterns = {"at://did:plc:abc/*"}}),
            (std::vector<std::string>{"at://did:plc:abc/post/1", "at://did:plc:abc/post/2", "at://did:plc:abc/post/7",
                                      "at://did:plc:abc/post/1"}));
}

TEST_F(LabelStoreQueryTest, UnderscoreAndPercentAreNotWildcards) {
  EXPECT_EQ(Run({.uri_patterns = {"at://did:plc:a_c*"}}), (std::vector<std::string>{"at://did:plc:a_c/post/5"}));
  EXPECT_EQ(Run({.uri_patterns = {"at://did:plc:a%c*"}}), (std::vector<std::string>{"at://did:plc:a%c/post/6"}));
  EXPECT_EQ(Run({.uri_patterns = {"at://did:plc:a%*"}}), (std::vector<std::string>{"at://did:plc:a%c/post/6"}));
  EXPECT_TRUE(Run({.uri_patterns = {"at://did:plc:a_c/post/1"}}).empty());
}

TEST_F(LabelStoreQueryTest, PrefixIsCaseSensitive) {
  EXPECT_EQ(Run({.uri_patterns = {"at://did:plc:ABC*"}}), (std::vector<std::string>{"at://did:plc:ABC/post/3"}));
  EXPECT_EQ(Run({.uri_patterns = {"AT://*"}}), std::vector<std::string>{});
}

TEST_F(LabelStoreQueryTest, StarAloneMatchesEverything) {
  EXPECT_EQ(Run({.uri_patterns = {"*"}, .limit = 100}).size(), 9u);
  EXPECT_EQ(Run({.uri_patterns = {"at://nothing", "*"}, .limit = 100}).size(), 9u);
}

TEST_F(LabelStoreQueryTest, PatternsAreOredAndSourcesFilter) {
  EXPECT_EQ(Run({.uri_patterns = {"at://did:plc:abd/post/4", "at://did:plc:a_c*", "did:plc:abc"}}),
            (std::vector<std::string>{"at://did:plc:abd/post/4", "at://did:plc:a_c/post/5", "did:plc:abc"}));
  EXPECT_EQ(Run({.uri_patterns = {"at://did:plc:abc/*"}, .sources = {kOtherSrc}}),
            (std::vector<std::string>{"at://did:plc:abc/post/7"}));
  EXPECT_EQ(Run({.uri_patterns = {"*"}, .sources = {kSrc}, .limit = 100}).size(), 8u);
  EXPECT_EQ(Run({.uri_patterns = {"*"}, .sources = {kSrc, kOtherSrc}, .limit = 100}).size(), 9u);
  EXPECT_TRUE(Run({.uri_patterns = {"*"}, .sources = {"did:plc:nobody"}}).empty());
}

TEST_F(LabelStoreQueryTest, CursorAndLimitPage) {
  std::vector<std::int64_t> seqs;
  std::int64_t cursor = 0;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = QueryOk(*store_, {.uri_patterns = {"at://did:plc:a*"}, .after_seq = cursor, .limit = 2});
    if (page.empty()) break;
    EXPECT_LE(page.size(), 2u);
    for (const auto& l : page) seqs.push_back(l.seq);
    cursor = page.back().seq;
  }
  // Everything under at://did:plc:a but the upper-case ABC one.
  EXPECT_EQ(seqs.size(), 7u);
  for (std::size_t i = 1; i < seqs.size(); ++i) EXPECT_GT(seqs[i], seqs[i - 1]);
}

TEST_F(LabelStoreQueryTest, RefusesAStarBeforeTheEnd) {
  auto result = store_->Query({.uri_patterns = {"at://*/post"}});
  EXPECT_FALSE(result);
}

TEST(LabelStoreTest, PrefixEndingInHighBytesCarries) {
  // PostgreSQL's text is valid UTF-8, and so is every uri that reaches the log (emitted labels
  // come as JSON): the byte-order edge is SQLite's alone.
  if (kOnPostgres) GTEST_SKIP() << "bytes that are not UTF-8";
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  AppendOk(*store, {MakeLabel("ab\xff\xff-x"), MakeLabel("ab\xff"), MakeLabel("ac"), MakeLabel("\xff\xff"),
                    MakeLabel("\xff\xff\xff")});
  EXPECT_EQ(Uris(QueryOk(*store, {.uri_patterns = {"ab\xff*"}})),
            (std::vector<std::string>{"ab\xff\xff-x", "ab\xff"}));
  // No string bounds an all-0xff prefix from above.
  EXPECT_EQ(Uris(QueryOk(*store, {.uri_patterns = {"\xff\xff*"}})),
            (std::vector<std::string>{"\xff\xff", "\xff\xff\xff"}));
}

TEST(LabelStoreTest, QueryWithThousandsOfExactUris) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  std::vector<StoredLabel> labels;
  LabelQuery query{.limit = 5000};
  for (int i = 0; i < 1300; ++i) {
    labels.push_back(MakeLabel("at://q/" + std::to_string(i)));
    if (i % 2 == 0) query.uri_patterns.push_back("at://q/" + std::to_string(i));
  }
  AppendOk(*store, labels);
  EXPECT_EQ(QueryOk(*store, query).size(), 650u);
}

// --- State queries ---

// An ATProto datetime for now + `from_now_seconds`, written in local time at `offset` (which is
// `offset_seconds` ahead of UTC).
std::string Datetime(std::int64_t from_now_seconds, const std::string& offset, std::int64_t offset_seconds) {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()) + from_now_seconds +
                        offset_seconds;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S.500", &tm);
  return buffer + offset;
}

TEST(LabelStoreStateTest, NegationDeactivatesAndIsReported) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  const std::string uri = "at://did:plc:artist/fm.plyr.track/1";
  AppendOk(*store, {MakeLabel(uri, "copyright-violation"), MakeLabel(uri, "sexual")});
  auto active = store->ActiveValuesByUri(kSrc, {uri});
  ASSERT_TRUE(active);
  EXPECT_EQ((*active)[uri], (std::vector<std::string>{"copyright-violation", "sexual"}));
  auto negated = store->NegatedUris(kSrc, {uri}, "copyright-violation");
  ASSERT_TRUE(negated);
  EXPECT_TRUE(negated->empty());

  AppendOk(*store, {MakeLabel(uri, "copyright-violation", true)});
  active = store->ActiveValuesByUri(kSrc, {uri});
  ASSERT_TRUE(active);
  EXPECT_EQ((*active)[uri], (std::vector<std::string>{"sexual"}));
  negated = store->NegatedUris(kSrc, {uri, "at://other"}, "copyright-violation");
  ASSERT_TRUE(negated);
  EXPECT_EQ(*negated, (std::vector<std::string>{uri}));
  auto by_value = store->ActiveUrisByValue(kSrc, {"copyright-violation"});
  ASSERT_TRUE(by_value);
  EXPECT_TRUE(by_value->empty());
}

TEST(LabelStoreStateTest, RelabelAfterNegationIsActiveAgain) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  const std::string uri = "at://did:plc:artist/fm.plyr.track/2";
  AppendOk(*store, {MakeLabel(uri, "copyright-violation")});
  AppendOk(*store, {MakeLabel(uri, "copyright-violation", true)});
  AppendOk(*store, {MakeLabel(uri, "copyright-violation")});
  auto active = store->ActiveValuesByUri(kSrc, {uri});
  ASSERT_TRUE(active);
  EXPECT_EQ((*active)[uri], (std::vector<std::string>{"copyright-violation"}));
  auto negated = store->NegatedUris(kSrc, {uri}, "copyright-violation");
  ASSERT_TRUE(negated);
  EXPECT_TRUE(negated->empty());
  auto by_value = store->ActiveUrisByValue(kSrc, {"copyright-violation"});
  ASSERT_TRUE(by_value);
  EXPECT_EQ(*by_value, (std::map<std::string, std::vector<std::string>>{{uri, {"copyright-violation"}}}));
}

TEST(LabelStoreStateTest, ExpiredLabelsAreInactive) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  AppendOk(*store, {
                       MakeLabel("at://e/past", "sexual", false, "2001-02-03T04:05:06.789Z"),
                       MakeLabel("at://e/future", "sexual", false, "2999-01-01T00:00:00Z"),
                       // Local times ahead of / behind UTC: only applying the offset gets these right.
                       MakeLabel("at://e/plus", "sexual", false, Datetime(-30 * 60, "+01:00", 60 * 60)),
                       MakeLabel("at://e/minus", "sexual", false, Datetime(30 * 60, "-01:00", -60 * 60)),
                       MakeLabel("at://e/none", "sexual"),
                   });
  auto active = store->ActiveValuesByUri(
      kSrc, {"at://e/past", "at://e/future", "at://e/plus", "at://e/minus", "at://e/none"});
  ASSERT_TRUE(active);
  EXPECT_FALSE(active->contains("at://e/past"));
  EXPECT_FALSE(active->contains("at://e/plus"));
  EXPECT_TRUE(active->contains("at://e/minus"));
  EXPECT_TRUE(active->contains("at://e/future"));
  EXPECT_TRUE(active->contains("at://e/none"));
  auto by_value = store->ActiveUrisByValue(kSrc, {"sexual"});
  ASSERT_TRUE(by_value);
  EXPECT_EQ(by_value->size(), 3u);
  EXPECT_TRUE(by_value->contains("at://e/future"));
  // A later event without exp supersedes the expired one.
  AppendOk(*store, {MakeLabel("at://e/past", "sexual")});
  active = store->ActiveValuesByUri(kSrc, {"at://e/past"});
  ASSERT_TRUE(active);
  EXPECT_TRUE(active->contains("at://e/past"));
}

TEST(LabelStoreStateTest, OtherSourcesAreIgnored) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  const std::string uri = "at://s/1";
  AppendOk(*store, {MakeLabel(uri, "porn", false, std::nullopt, kOtherSrc),
                    MakeLabel(uri, "spam"),
                    // The other labeler's negation of "spam" does not withdraw ours.
                    MakeLabel(uri, "spam", true, std::nullopt, kOtherSrc)});
  auto active = store->ActiveValuesByUri(kSrc, {uri});
  ASSERT_TRUE(active);
  EXPECT_EQ((*active)[uri], (std::vector<std::string>{"spam"}));
  auto negated = store->NegatedUris(kSrc, {uri}, "spam");
  ASSERT_TRUE(negated);
  EXPECT_TRUE(negated->empty());
  negated = store->NegatedUris(kOtherSrc, {uri}, "spam");
  ASSERT_TRUE(negated);
  EXPECT_EQ(negated->size(), 1u);
  auto by_value = store->ActiveUrisByValue(kSrc, {"porn", "spam"});
  ASSERT_TRUE(by_value);
  EXPECT_EQ(*by_value, (std::map<std::string, std::vector<std::string>>{{uri, {"spam"}}}));
}

TEST(LabelStoreStateTest, ActiveUrisByValueKeepsOnlyTheAskedValues) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  AppendOk(*store, {MakeLabel("at://v/1", "sexual"), MakeLabel("at://v/1", "porn"), MakeLabel("at://v/1", "spam"),
                    MakeLabel("at://v/2", "porn"), MakeLabel("at://v/3", "spam")});
  auto by_value = store->ActiveUrisByValue(kSrc, {"porn", "sexual", "porn"});
  ASSERT_TRUE(by_value);
  EXPECT_EQ(*by_value, (std::map<std::string, std::vector<std::string>>{{"at://v/1", {"porn", "sexual"}},
                                                                        {"at://v/2", {"porn"}}}));
}

TEST(LabelStoreStateTest, ManyUrisAreChunked) {
  testing::TempDir dir;
  auto store = OpenStore(dir.path() / "labels.db");
  ASSERT_TRUE(store);
  std::vector<StoredLabel> labels;
  std::vector<std::string> uris;
  for (int i = 0; i < 1234; ++i) {
    const std::string uri = "at://m/" + std::to_string(i);
    uris.push_back(uri);
    if (i % 5 != 4) labels.push_back(MakeLabel(uri, "copyright-violation"));
  }
  for (int i = 0; i < 1234; i += 3) labels.push_back(MakeLabel(uris[i], "copyright-violation", true));
  AppendOk(*store, labels);
  uris.push_back(uris.front());  // a duplicate, across chunks
  std::size_t want_active = 0, want_negated = 0;
  for (int i = 0; i < 1234; ++i) {
    if (i % 3 == 0) ++want_negated;
    else if (i % 5 != 4) ++want_active;
  }
  auto active = store->ActiveValuesByUri(kSrc, uris);
  ASSERT_TRUE(active);
  EXPECT_EQ(active->size(), want_active);
  for (const auto& [uri, values] : *active) EXPECT_EQ(values, (std::vector<std::string>{"copyright-violation"}));
  auto negated = store->NegatedUris(kSrc, uris, "copyright-violation");
  ASSERT_TRUE(negated);
  EXPECT_EQ(negated->size(), want_negated);
  auto by_value = store->ActiveUrisByValue(kSrc, {"copyright-violation"});
  ASSERT_TRUE(by_value);
  EXPECT_EQ(by_value->size(), want_active);
}

// Several instances appending to one log at once: every listener, on every instance, hears every
// seq exactly once, in order, without a gap, whoever appended it (label_store_pg.cpp).
TEST(LabelStoreTest, InstancesSharingALogAllHearEverySeqOnceInOrder) {
  if (!kOnPostgres) GTEST_SKIP() << "one process owns a SQLite log";
  testing::TempDir dir;
  const auto path = dir.path() / "shared";
  std::vector<std::unique_ptr<LabelStore>> instances;
  for (int i = 0; i < 3; ++i) instances.push_back(OpenStore(path));
  std::mutex mutex;
  std::vector<std::vector<std::int64_t>> heard(instances.size());
  for (std::size_t i = 0; i < instances.size(); ++i) {
    instances[i]->SetCommitListener([&, i](const std::vector<StoredLabel>& labels) {
      std::lock_guard lock(mutex);
      for (const auto& l : labels) heard[i].push_back(l.seq);
    });
  }
  constexpr int kAppendsEach = 40;
  std::vector<std::thread> emitters;
  for (std::size_t i = 0; i < instances.size(); ++i) {
    emitters.emplace_back([&, i] {
      for (int n = 0; n < kAppendsEach; ++n) {
        AppendOk(*instances[i], {MakeLabel("at://i" + std::to_string(i) + "/" + std::to_string(n)),
                                 MakeLabel("at://i" + std::to_string(i) + "/" + std::to_string(n) + "b")});
      }
    });
  }
  for (auto& t : emitters) t.join();
  // An instance hears the others' commits when they are announced; here, by catching up.
  for (auto& instance : instances) ASSERT_TRUE(instance->CatchUp().ok());
  const std::int64_t total = static_cast<std::int64_t>(instances.size()) * kAppendsEach * 2;
  std::lock_guard lock(mutex);
  for (std::size_t i = 0; i < instances.size(); ++i) {
    ASSERT_EQ(static_cast<std::int64_t>(heard[i].size()), total) << "instance " << i;
    for (std::int64_t k = 0; k < total; ++k) ASSERT_EQ(heard[i][static_cast<std::size_t>(k)], k + 1) << "instance " << i;
    EXPECT_EQ(instances[i]->head_seq(), total);
  }
}

}  // namespace
}  // namespace plyr::labeler
