#include "labeler/label_store.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/migrations.h"
#include "labeler/label_cbor.h"
#include "labeler/label_store_util.h"
#include "labeler/signing_key.h"

namespace plyr::labeler {

using namespace log_util;

namespace {


// Version 1 of the schema (common/migrations.h; builds before migrations marked it with PRAGMA
// user_version = 1, which is still written so that they can open the log). Beyond the signed fields, `exp_ms` holds `exp` as Unix milliseconds (parsed
// once at append), because ATProto datetimes with offsets or other fraction lengths do not compare
// as strings. STRICT makes SQLite refuse a value of the wrong type (a sig bound as TEXT, say)
// instead of storing it. Two indexes, because every index is written on each append: (uri, src,
// val) serves queryLabels by uri (exact and prefix range) and the state queries by uri; (src, val,
// uri) serves the state query by value.
constexpr std::int64_t kSchemaVersion = 1;
constexpr Migration kMigrations[] = {
    {"the label log",
     "CREATE TABLE IF NOT EXISTS labels ("
     "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  src TEXT NOT NULL, uri TEXT NOT NULL, cid TEXT, val TEXT NOT NULL, neg INTEGER NOT NULL,"
     "  cts TEXT NOT NULL, exp TEXT, sig BLOB NOT NULL, cbor BLOB NOT NULL,"
     "  exp_ms INTEGER, CHECK ((exp IS NULL) = (exp_ms IS NULL))) STRICT;"
     "CREATE INDEX IF NOT EXISTS labels_by_uri ON labels(uri, src, val);"
     "CREATE INDEX IF NOT EXISTS labels_by_value ON labels(src, val, uri)",
     // uri in byte order ("C"), as SQLite's BINARY: the prefix ranges of queryLabels need it.
     // labeler_log_head: the counter seqs are taken from (label_store_pg.cpp).
     "CREATE TABLE labeler_labels ("
     "  seq BIGINT PRIMARY KEY,"
     "  src TEXT NOT NULL, uri TEXT COLLATE \"C\" NOT NULL, cid TEXT, val TEXT NOT NULL, neg SMALLINT NOT NULL,"
     "  cts TEXT NOT NULL, exp TEXT, sig BYTEA NOT NULL, cbor BYTEA NOT NULL,"
     "  exp_ms BIGINT, CHECK ((exp IS NULL) = (exp_ms IS NULL)));"
     "CREATE INDEX labeler_labels_by_uri ON labeler_labels (uri, src, val);"
     "CREATE INDEX labeler_labels_by_value ON labeler_labels (src, val, uri);"
     "CREATE TABLE labeler_log_head (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), seq BIGINT NOT NULL);"
     "INSERT INTO labeler_log_head (seq) VALUES (0)"},
};

constexpr std::string_view kColumns = "seq, src, uri, cid, val, neg, cts, exp, sig, cbor";
constexpr std::string_view kInsert =
    "INSERT INTO labels (src, uri, cid, val, neg, cts, exp, sig, cbor, exp_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

constexpr std::size_t kMaxQueryParams = 32000;









StoredLabel ReadLabel(const SqlRow& row) {
  StoredLabel stored;
  stored.seq = row.Int(0);
  Label& label = stored.label;
  label.src = row.Text(1);
  label.uri = row.Text(2);
  if (!row.IsNull(3)) label.cid = row.Text(3);
  label.val = row.Text(4);
  label.neg = row.Int(5) != 0;
  label.cts = row.Text(6);
  if (!row.IsNull(7)) label.exp = row.Text(7);
  label.sig = std::string(row.Bytes(8));
  stored.cbor = std::string(row.Bytes(9));
  return stored;
}

// Whether the latest event of a (src, uri, val) makes the label active now.
bool IsActive(const SqlRow& row, int neg_column, int exp_ms_column, std::int64_t now_ms) {
  if (row.Int(neg_column) != 0) return false;
  return row.IsNull(exp_ms_column) || row.Int(exp_ms_column) > now_ms;
}

}  // namespace

struct SqliteLabelStoreImpl {
  using AppendDone = LabelStore::AppendDone;
  // One Append call: committed together, never split across transactions.
  struct Request {
    std::vector<StoredLabel> labels;
    std::vector<std::optional<std::int64_t>> exp_ms;  // per label
    AppendDone done;
    bool invalid = false;  // refused before reaching SQLite; nothing of it is stored
  };

  LabelStoreOptions options;
  std::unique_ptr<SqliteDb> writer_db;  // used only by the writer thread once it runs
  std::atomic<std::int64_t> head_seq{0};

  std::mutex mutex;
  std::condition_variable wake;
  std::deque<Request> queue;                                  // guarded by mutex
  bool stopping = false;                                      // guarded by mutex
  std::function<void(const std::vector<StoredLabel>&)> listener;  // guarded by mutex

  std::mutex pool_mutex;
  std::condition_variable pool_released;
  std::vector<std::unique_ptr<SqliteDb>> readers;  // owned; all of them
  std::vector<SqliteDb*> free_readers;             // guarded by pool_mutex

  std::thread writer;  // last member: started once everything above exists

  ~SqliteLabelStoreImpl() {
    if (writer.joinable()) {
      {
        std::lock_guard lock(mutex);
        stopping = true;
      }
      wake.notify_one();
      writer.join();
    }
  }

  // A read connection, returned to the pool when the lease ends.
  class Lease {
   public:
    explicit Lease(SqliteLabelStoreImpl& impl) : impl_(impl) {
      std::unique_lock lock(impl_.pool_mutex);
      impl_.pool_released.wait(lock, [&] { return !impl_.free_readers.empty(); });
      db_ = impl_.free_readers.back();
      impl_.free_readers.pop_back();
    }
    ~Lease() {
      {
        std::lock_guard lock(impl_.pool_mutex);
        impl_.free_readers.push_back(db_);
      }
      impl_.pool_released.notify_one();
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    SqliteDb* operator->() const { return db_; }

   private:
    SqliteLabelStoreImpl& impl_;
    SqliteDb* db_ = nullptr;
  };

  void WriterLoop() {
    for (;;) {
      std::vector<Request> batch;
      std::function<void(const std::vector<StoredLabel>&)> on_commit;
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and everything queued is done
        std::size_t count = 0;
        while (!queue.empty() && (batch.empty() || count + queue.front().labels.size() <= options.max_batch)) {
          count += queue.front().labels.size();
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        on_commit = listener;
      }
      Commit(batch, on_commit);
    }
  }

  void Commit(std::vector<Request>& batch, const std::function<void(const std::vector<StoredLabel>&)>& on_commit) {
    bool has_rows = false;
    for (const Request& request : batch) has_rows = has_rows || (!request.invalid && !request.labels.empty());

    const auto or_null = [](const auto& value) { return value ? SqlValue(*value) : SqlValue(nullptr); };
    // Seqs are written into the requests as rows go in; they only count once COMMIT succeeds.
    const Status committed = !has_rows ? OkStatus() : writer_db->Transaction([&] {
      for (Request& request : batch) {
        if (request.invalid) continue;
        for (std::size_t i = 0; i < request.labels.size(); ++i) {
          const Label& label = request.labels[i].label;
          Status inserted = writer_db->Run(kInsert, {label.src, label.uri, or_null(label.cid), label.val,
                                                     std::int64_t{label.neg ? 1 : 0}, label.cts, or_null(label.exp),
                                                     SqlBlob{label.sig}, SqlBlob{request.labels[i].cbor},
                                                     or_null(request.exp_ms[i])});
          if (!inserted.ok()) return inserted;
          request.labels[i].seq = writer_db->last_insert_rowid();
        }
      }
      return OkStatus();
    });

    if (!committed.ok()) {
      spdlog::error("label log: append failed requests={} error=\"{}\"", batch.size(), committed.message());
      for (Request& request : batch) {
        if (!request.done) continue;
        request.done(request.invalid ? InvalidLabel() : committed);
      }
      return;
    }

    std::vector<StoredLabel> stored;
    std::vector<std::vector<std::int64_t>> seqs(batch.size());
    for (std::size_t r = 0; r < batch.size(); ++r) {
      if (batch[r].invalid) continue;
      for (StoredLabel& label : batch[r].labels) {
        seqs[r].push_back(label.seq);
        stored.push_back(std::move(label));
      }
    }
    if (!stored.empty()) {
      head_seq.store(stored.back().seq, std::memory_order_release);
      if (on_commit) on_commit(stored);
    }
    for (std::size_t r = 0; r < batch.size(); ++r) {
      if (!batch[r].done) continue;
      if (batch[r].invalid) {
        batch[r].done(InvalidLabel());
      } else {
        batch[r].done(std::move(seqs[r]));
      }
    }
  }

  StatusOr<std::vector<StoredLabel>> Select(const std::string& sql, const std::vector<SqlValue>& params) {
    std::vector<StoredLabel> out;
    Lease db(*this);
    if (Status read = db->Run(sql, params, [&](const SqlRow& row) { out.push_back(ReadLabel(row)); }); !read.ok()) {
      spdlog::error("label log: read failed error=\"{}\"", read.message());
      return read;
    }
    return out;
  }
};

// The log in SQLite (the embedded default).
class SqliteLabelStore final : public LabelStore {
 public:
  explicit SqliteLabelStore(std::unique_ptr<SqliteLabelStoreImpl> impl) : impl_(std::move(impl)) {}
  ~SqliteLabelStore() override = default;  // the Impl's destructor drains the queue and joins the writer

  void Append(std::vector<StoredLabel> labels, AppendDone done) override;
  void SetCommitListener(std::function<void(const std::vector<StoredLabel>&)> listener) override;
  std::int64_t head_seq() const override;
  StatusOr<std::vector<StoredLabel>> ReadAfter(std::int64_t after_seq, std::size_t limit) override;
  StatusOr<std::vector<StoredLabel>> Query(const LabelQuery& query) override;
  StatusOr<std::map<std::string, std::vector<std::string>>> ActiveValuesByUri(
      const std::string& src, const std::vector<std::string>& uris) override;
  StatusOr<std::map<std::string, std::vector<std::string>>> ActiveUrisByValue(
      const std::string& src, const std::vector<std::string>& values) override;
  StatusOr<std::vector<std::string>> NegatedUris(const std::string& src, const std::vector<std::string>& uris,
                                                 const std::string& val) override;

 private:
  using Impl = SqliteLabelStoreImpl;
  StatusOr<std::map<std::string, std::vector<std::string>>> ActiveGrouped(
      const std::string& src, const std::vector<std::string>& keys, std::string_view column,
      std::string_view group_by);
  std::unique_ptr<SqliteLabelStoreImpl> impl_;
};

std::span<const Migration> LabelStoreMigrations() { return kMigrations; }

StatusOr<std::unique_ptr<LabelStore>> LabelStore::Open(const std::filesystem::path& path, LabelStoreOptions options) {
  auto impl = std::make_unique<SqliteLabelStoreImpl>();
  impl->options = options;
  if (impl->options.max_batch == 0) impl->options.max_batch = 1;
  if (impl->options.readers == 0) impl->options.readers = 1;

  auto writer_db = SqliteDb::Open(path);
  if (!writer_db.ok()) return Status(writer_db.status().code(), "label log: " + writer_db.status().message());
  impl->writer_db = std::move(*writer_db);
  SqliteDb& db = *impl->writer_db;

  std::int64_t version = 0;
  if (Status read = db.Run("PRAGMA user_version", {}, [&](const SqlRow& row) { version = row.Int(0); }); !read.ok()) {
    return Status(read.code(), "label log: " + read.message());
  }
  if (version > kSchemaVersion) {
    return Status(StatusCode::kFailedPrecondition, "label log: schema version " + std::to_string(version) +
                                                       " is newer than this build's " + std::to_string(kSchemaVersion));
  }
  if (auto migrated = Migrate(db, kLabelStoreName, kMigrations); !migrated.ok()) {
    return Status(migrated.status().code(), "label log schema: " + migrated.status().message());
  }
  // PRAGMA takes no parameters; the value is a compile-time constant.
  if (Status marked = db.Run("PRAGMA user_version = " + std::to_string(kSchemaVersion)); !marked.ok()) {
    return Status(marked.code(), "label log schema: " + marked.message());
  }

  // The highest seq ever handed out: AUTOINCREMENT keeps it in sqlite_sequence, which an operator
  // restoring an old backup moves past every seq already served (docs/operations.md), so that
  // subscribers resuming from those cursors are not told they are in the future.
  std::int64_t head = 0;
  Status head_read = db.Run(
      "SELECT MAX(IFNULL((SELECT MAX(seq) FROM labels), 0), "
      "IFNULL((SELECT seq FROM sqlite_sequence WHERE name = 'labels'), 0))",
      {}, [&](const SqlRow& row) { head = row.Int(0); });
  if (!head_read.ok()) return Status(head_read.code(), "label log: " + head_read.message());
  impl->head_seq.store(head);

  for (std::size_t i = 0; i < impl->options.readers; ++i) {
    auto reader = SqliteDb::Open(path);
    if (!reader.ok()) return Status(reader.status().code(), "label log reader: " + reader.status().message());
    // A guard: reads must never take the write lock from the writer thread.
    if (Status guarded = (*reader)->Run("PRAGMA query_only = ON"); !guarded.ok()) {
      return Status(guarded.code(), "label log reader: " + guarded.message());
    }
    impl->free_readers.push_back(reader->get());
    impl->readers.push_back(std::move(*reader));
  }

  try {
    impl->writer = std::thread([raw = impl.get()] { raw->WriterLoop(); });
  } catch (const std::system_error& e) {
    return Status(StatusCode::kInternal, std::string("label log: cannot start the writer thread: ") + e.what());
  }
  return std::unique_ptr<LabelStore>(std::make_unique<SqliteLabelStore>(std::move(impl)));
}

void SqliteLabelStore::Append(std::vector<StoredLabel> labels, AppendDone done) {
  SqliteLabelStoreImpl::Request request;
  request.exp_ms.reserve(labels.size());
  for (const StoredLabel& stored : labels) {
    // Unsigned labels must never be served, and an unreadable expiry cannot be enforced.
    if (stored.label.sig.empty() || stored.cbor.empty()) request.invalid = true;
    std::optional<std::int64_t> exp_ms;
    if (stored.label.exp) {
      exp_ms = DatetimeToUnixMs(*stored.label.exp);
      if (!exp_ms) request.invalid = true;
    }
    request.exp_ms.push_back(exp_ms);
  }
  request.labels = std::move(labels);
  request.done = std::move(done);
  {
    std::lock_guard lock(impl_->mutex);
    impl_->queue.push_back(std::move(request));
  }
  impl_->wake.notify_one();
}

void SqliteLabelStore::SetCommitListener(std::function<void(const std::vector<StoredLabel>&)> listener) {
  std::lock_guard lock(impl_->mutex);
  impl_->listener = std::move(listener);
}

std::int64_t SqliteLabelStore::head_seq() const { return impl_->head_seq.load(std::memory_order_acquire); }

StatusOr<std::size_t> LabelStore::ResignAll(const std::filesystem::path& path, const SigningKey& key) {
  auto db = SqliteDb::Open(path);
  if (!db.ok()) return db.status();
  static const std::string select =
      "SELECT " + std::string(kColumns) + " FROM labels WHERE seq > ?1 ORDER BY seq LIMIT 1000";
  std::size_t resigned = 0;
  const Status done = (*db)->Transaction([&] {
    std::int64_t after = 0;
    for (;;) {
      std::vector<StoredLabel> page;
      Status read = (*db)->Run(select, {after}, [&](const SqlRow& row) { page.push_back(ReadLabel(row)); });
      if (!read.ok() || page.empty()) return read;
      for (StoredLabel& stored : page) {
        stored.label.sig = key.Sign(EncodeUnsignedLabel(stored.label));
        stored.cbor = EncodeSignedLabel(stored.label);
        Status updated = (*db)->Run("UPDATE labels SET sig = ?1, cbor = ?2 WHERE seq = ?3",
                                    {SqlBlob{stored.label.sig}, SqlBlob{stored.cbor}, stored.seq});
        if (!updated.ok()) return updated;
        ++resigned;
      }
      after = page.back().seq;
    }
  });
  if (!done.ok()) return Status(done.code(), "re-signing failed, nothing changed: " + done.message());
  return resigned;
}

StatusOr<std::vector<StoredLabel>> SqliteLabelStore::ReadAfter(std::int64_t after_seq, std::size_t limit) {
  static const std::string sql =
      "SELECT " + std::string(kColumns) + " FROM labels WHERE seq > ?1 ORDER BY seq LIMIT ?2";
  return impl_->Select(sql, {after_seq, ClampLimit(limit)});
}

StatusOr<std::vector<StoredLabel>> SqliteLabelStore::Query(const LabelQuery& query) {
  auto terms = SortOutQueryTerms(query.uri_patterns, query.sources, kMaxQueryParams);
  if (!terms.ok()) return terms.status();
  if (terms->patterns.none()) return std::vector<StoredLabel>{};
  const bool match_all = terms->patterns.match_all;
  const std::vector<std::string>& exact = terms->patterns.exact;
  const std::vector<std::string>& prefixes = terms->patterns.prefixes;
  const std::vector<std::string>& sources = terms->sources;

  SqlBuilder sql("SELECT " + std::string(kColumns) + " FROM labels WHERE seq > ");
  sql.Param(query.after_seq);
  if (!match_all) {
    sql.Text(" AND (");
    bool first = true;
    if (!exact.empty()) {
      sql.InChunked("uri", exact);
      first = false;
    }
    // A range on the uri index, not LIKE: LIKE folds ASCII case and treats '_' and '%' as
    // wildcards, and a URI may contain both.
    for (const std::string& prefix : prefixes) {
      if (!first) sql.Text(" OR ");
      first = false;
      sql.Text("(uri >= ").Param(prefix).Text(" AND uri < ");
      if (auto upper = PrefixUpperBound(prefix)) {
        sql.Param(std::move(*upper));
      } else {
        // No string bounds an all-0xff prefix from above, but in SQLite every BLOB sorts after
        // every TEXT value, so an empty BLOB keeps the statement's shape and the index range.
        sql.Param(SqlBlob{std::string_view("", 0)});
      }
      sql.Text(")");
    }
    sql.Text(")");
  }
  // The unary '+' keeps SQLite's planner off two plans that look cheap with unknown parameters
  // but read the whole log: a src index scan (this labeler is nearly every row's src), and, when
  // uris are filtered, walking seq order to skip the sort (a narrow prefix then scans everything
  // after the cursor). With uris filtered, the uri index finds the rows and only they are sorted.
  if (!sources.empty()) {
    sql.Text(" AND ");
    sql.InChunked("+src", sources);
  }
  sql.Text(match_all ? " ORDER BY seq LIMIT " : " ORDER BY +seq LIMIT ").Param(ClampLimit(query.limit));
  return impl_->Select(sql.sql(), sql.params());
}

// The active values per uri among the latest events of `src` whose `column` ("uri" or "val") is in
// `keys`. `group_by` follows the index that serves the column, so each group's rows are adjacent.
StatusOr<std::map<std::string, std::vector<std::string>>> SqliteLabelStore::ActiveGrouped(
    const std::string& src, const std::vector<std::string>& keys, std::string_view column,
    std::string_view group_by) {
  const std::vector<std::string> distinct = Distinct(keys);
  const std::int64_t now_ms = NowUnixMs();
  std::map<std::string, std::vector<std::string>> out;
  Impl::Lease db(*impl_);
  for (std::size_t start = 0; start < distinct.size(); start += kMaxInChunk) {
    const std::span<const std::string> chunk(distinct.data() + start, std::min(kMaxInChunk, distinct.size() - start));
    // SQLite takes the bare columns of a MAX() aggregate from the row holding the maximum, so
    // each group yields its latest event.
    SqlBuilder sql("SELECT uri, val, neg, exp_ms, MAX(seq) FROM labels WHERE src = ");
    sql.Param(src).Text(" AND ").In(column, chunk).Text(" GROUP BY ").Text(group_by);
    Status read = db->Run(sql.sql(), sql.params(), [&](const SqlRow& row) {
      if (IsActive(row, 2, 3, now_ms)) out[row.Text(0)].push_back(row.Text(1));
    });
    if (!read.ok()) {
      spdlog::error("label log: state query failed error=\"{}\"", read.message());
      return read;
    }
  }
  for (auto& [uri, values] : out) std::sort(values.begin(), values.end());
  return out;
}

StatusOr<std::map<std::string, std::vector<std::string>>> SqliteLabelStore::ActiveValuesByUri(
    const std::string& src, const std::vector<std::string>& uris) {
  return ActiveGrouped(src, uris, "uri", "uri, val");
}

StatusOr<std::map<std::string, std::vector<std::string>>> SqliteLabelStore::ActiveUrisByValue(
    const std::string& src, const std::vector<std::string>& values) {
  return ActiveGrouped(src, values, "val", "val, uri");
}

StatusOr<std::vector<std::string>> SqliteLabelStore::NegatedUris(const std::string& src,
                                                                        const std::vector<std::string>& uris,
                                                                        const std::string& val) {
  const std::vector<std::string> distinct = Distinct(uris);
  std::vector<std::string> out;
  Impl::Lease db(*impl_);
  for (std::size_t start = 0; start < distinct.size(); start += kMaxInChunk) {
    const std::span<const std::string> chunk(distinct.data() + start, std::min(kMaxInChunk, distinct.size() - start));
    SqlBuilder sql("SELECT uri, neg, MAX(seq) FROM labels WHERE src = ");
    sql.Param(src).Text(" AND val = ").Param(val).Text(" AND ").In("uri", chunk).Text(" GROUP BY uri");
    Status read = db->Run(sql.sql(), sql.params(), [&](const SqlRow& row) {
      if (row.Int(1) != 0) out.push_back(row.Text(0));
    });
    if (!read.ok()) {
      spdlog::error("label log: state query failed error=\"{}\"", read.message());
      return read;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace plyr::labeler
