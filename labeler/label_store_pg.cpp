// The label log in PostgreSQL, shared by several labeler instances.
//
// Order. A label's seq comes from one counter row (labeler_log_head), taken inside the appending
// transaction with UPDATE ... SET seq = seq + n RETURNING seq. The row stays locked until that
// transaction ends, so the next appender, on whatever instance, gets its seqs only after this one
// has committed (or rolled back, returning nothing: seqs have no gaps). Commit order is therefore
// seq order: whoever sees seq N committed also sees every seq below it. A bare sequence would not
// give that (a lower seq could commit after a higher one is already sent), and a subscriber
// could skip it.
//
// Delivery. Each instance hands labels to its commit listener (its subscribers' feed) only by
// reading the log in seq order after the last seq it delivered: after each of its own commits,
// and when another instance announces one (kLabelChannel, sent with the commit). So every
// subscriber, on every instance, sees every seq once, in order, without a gap, whoever emitted it.
//
// Appends are group-committed by one writer thread per instance, as on SQLite; instances
// serialize on the counter row only for the length of a commit.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "labeler/label_store.h"
#include "labeler/label_store_util.h"

namespace plyr::labeler {

using namespace log_util;

namespace {

constexpr std::string_view kColumns = "seq, src, uri, cid, val, neg, cts, exp, sig, cbor";
// Rows per INSERT statement: 11 parameters each, far below PostgreSQL's 65535.
constexpr std::size_t kRowsPerInsert = 500;

StoredLabel LabelOf(const PgResult& rows, int i) {
  StoredLabel stored;
  stored.seq = rows.Int(i, 0);
  Label& label = stored.label;
  label.src = rows.Text(i, 1);
  label.uri = rows.Text(i, 2);
  if (!rows.IsNull(i, 3)) label.cid = std::string(rows.Text(i, 3));
  label.val = rows.Text(i, 4);
  label.neg = rows.Int(i, 5) != 0;
  label.cts = rows.Text(i, 6);
  if (!rows.IsNull(i, 7)) label.exp = std::string(rows.Text(i, 7));
  label.sig = rows.Bytes(i, 8);
  stored.cbor = rows.Bytes(i, 9);
  return stored;
}

// Inserts labels with their seqs, kRowsPerInsert to a statement.
Status InsertRows(PgConnection& c, const std::vector<std::pair<const StoredLabel*, std::optional<std::int64_t>>>& rows) {
  for (std::size_t start = 0; start < rows.size(); start += kRowsPerInsert) {
    const std::size_t end = std::min(rows.size(), start + kRowsPerInsert);
    std::string sql = "INSERT INTO labeler_labels (seq, src, uri, cid, val, neg, cts, exp, sig, cbor, exp_ms) VALUES ";
    PgParams params;
    for (std::size_t r = start; r < end; ++r) {
      const StoredLabel& stored = *rows[r].first;
      const Label& label = stored.label;
      sql += r == start ? "(" : ", (";
      for (int k = 1; k <= 11; ++k) {
        sql += (k == 1 ? "$" : ", $") + std::to_string(params.size() + static_cast<std::size_t>(k));
      }
      sql += ")";
      params.emplace_back(std::to_string(stored.seq));
      params.emplace_back(label.src);
      params.emplace_back(label.uri);
      params.emplace_back(label.cid);
      params.emplace_back(label.val);
      params.emplace_back(label.neg ? "1" : "0");
      params.emplace_back(label.cts);
      params.emplace_back(label.exp);
      params.emplace_back(PgBytea(label.sig));
      params.emplace_back(PgBytea(stored.cbor));
      params.emplace_back(rows[r].second ? std::optional<std::string>(std::to_string(*rows[r].second)) : std::nullopt);
    }
    if (auto inserted = c.Exec(sql, params); !inserted.ok()) return inserted.status();
  }
  return OkStatus();
}

Status LogError(const Status& failed) { return Status(failed.code(), "label log: " + std::string(failed.message())); }

class PgLabelStore final : public LabelStore {
 public:
  PgLabelStore(std::shared_ptr<PgDb> db, LabelStoreOptions options, std::int64_t head)
      : db_(std::move(db)), options_(options), delivered_(head) {
    writer_ = std::thread([this] { WriterLoop(); });
  }

  ~PgLabelStore() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
  }

  void Append(std::vector<StoredLabel> labels, AppendDone done) override {
    Request request;
    for (const StoredLabel& stored : labels) {
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
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(request));
    }
    wake_.notify_one();
  }

  void SetCommitListener(std::function<void(const std::vector<StoredLabel>&)> listener) override {
    std::lock_guard lock(deliver_mutex_);
    listener_ = std::move(listener);
  }

  Status CatchUp() override {
    std::lock_guard lock(deliver_mutex_);
    for (;;) {
      auto page = ReadAfter(delivered_.load(), 4096);
      if (!page.ok()) return page.status();
      if (page->empty()) return OkStatus();
      // Commit order is seq order (above): what is visible continues the delivered seqs. The head
      // moves first, so the listener sees head_seq() covering what it is handed.
      delivered_.store(page->back().seq, std::memory_order_release);
      if (listener_) listener_(*page);
    }
  }

  std::int64_t head_seq() const override { return delivered_.load(std::memory_order_acquire); }

  StatusOr<std::vector<StoredLabel>> ReadAfter(std::int64_t after_seq, std::size_t limit) override {
    return Select("SELECT " + std::string(kColumns) + " FROM labeler_labels WHERE seq > $1 ORDER BY seq LIMIT $2",
                  {std::to_string(after_seq), std::to_string(ClampLimit(limit))});
  }

  StatusOr<std::vector<StoredLabel>> Query(const LabelQuery& query) override {
    auto terms = SortOutQueryTerms(query.uri_patterns, query.sources, 60'000);
    if (!terms.ok()) return terms.status();
    if (terms->patterns.none()) return std::vector<StoredLabel>{};
    const bool match_all = terms->patterns.match_all;
    const std::vector<std::string>& exact = terms->patterns.exact;
    const std::vector<std::string>& prefixes = terms->patterns.prefixes;
    const std::vector<std::string>& sources = terms->sources;
    SqlBuilder sql("SELECT " + std::string(kColumns) + " FROM labeler_labels WHERE seq > ", SqlBuilder::Style::kPostgres);
    sql.Param(query.after_seq);
    if (!match_all) {
      sql.Text(" AND (");
      bool first = true;
      if (!exact.empty()) {
        sql.InChunked("uri", exact);
        first = false;
      }
      // A range in byte order on the uri index (the column's collation is "C"), not LIKE.
      for (const std::string& prefix : prefixes) {
        if (!first) sql.Text(" OR ");
        first = false;
        sql.Text("(uri >= ").Param(prefix);
        if (auto upper = PrefixUpperBound(prefix)) sql.Text(" AND uri < ").Param(std::move(*upper));
        sql.Text(")");
      }
      sql.Text(")");
    }
    if (!sources.empty()) {
      sql.Text(" AND ");
      sql.InChunked("src", sources);
    }
    sql.Text(" ORDER BY seq LIMIT ").Param(ClampLimit(query.limit));
    return Select(sql.sql(), PgTextParams(sql.params()));
  }

  StatusOr<std::map<std::string, std::vector<std::string>>> ActiveValuesByUri(
      const std::string& src, const std::vector<std::string>& uris) override {
    return ActiveGrouped(src, uris, "uri");
  }

  StatusOr<std::map<std::string, std::vector<std::string>>> ActiveUrisByValue(
      const std::string& src, const std::vector<std::string>& values) override {
    return ActiveGrouped(src, values, "val");
  }

  StatusOr<std::vector<std::string>> NegatedUris(const std::string& src, const std::vector<std::string>& uris,
                                                 const std::string& val) override {
    const std::vector<std::string> distinct = Distinct(uris);
    std::vector<std::string> out;
    for (std::size_t start = 0; start < distinct.size(); start += kMaxInChunk) {
      const std::span<const std::string> chunk(distinct.data() + start, std::min(kMaxInChunk, distinct.size() - start));
      // The latest event per uri: DISTINCT ON keeps the first row of each uri in seq DESC order.
      SqlBuilder sql("SELECT DISTINCT ON (uri) uri, neg FROM labeler_labels WHERE src = ", SqlBuilder::Style::kPostgres);
      sql.Param(src).Text(" AND val = ").Param(val).Text(" AND ").In("uri", chunk).Text(" ORDER BY uri, seq DESC");
      auto rows = db_->Exec(sql.sql(), PgTextParams(sql.params()));
      if (!rows.ok()) return LogError(rows.status());
      for (int i = 0; i < rows->rows(); ++i) {
        if (rows->Int(i, 1) != 0) out.emplace_back(rows->Text(i, 0));
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  struct Request {
    std::vector<StoredLabel> labels;
    std::vector<std::optional<std::int64_t>> exp_ms;
    AppendDone done;
    bool invalid = false;
  };

  StatusOr<std::vector<StoredLabel>> Select(const std::string& sql, const PgParams& params) {
    auto rows = db_->Exec(sql, params);
    if (!rows.ok()) {
      spdlog::error("label log: read failed error=\"{}\"", rows.status().message());
      return LogError(rows.status());
    }
    std::vector<StoredLabel> out;
    out.reserve(static_cast<std::size_t>(rows->rows()));
    for (int i = 0; i < rows->rows(); ++i) out.push_back(LabelOf(*rows, i));
    return out;
  }

  // The active values per uri among the latest events of `src` whose `column` is in `keys`.
  StatusOr<std::map<std::string, std::vector<std::string>>> ActiveGrouped(const std::string& src,
                                                                         const std::vector<std::string>& keys,
                                                                         std::string_view column) {
    const std::vector<std::string> distinct = Distinct(keys);
    const std::int64_t now_ms = NowUnixMs();
    std::map<std::string, std::vector<std::string>> out;
    for (std::size_t start = 0; start < distinct.size(); start += kMaxInChunk) {
      const std::span<const std::string> chunk(distinct.data() + start, std::min(kMaxInChunk, distinct.size() - start));
      SqlBuilder sql("SELECT DISTINCT ON (uri, val) uri, val, neg, exp_ms FROM labeler_labels WHERE src = ",
                     SqlBuilder::Style::kPostgres);
      sql.Param(src).Text(" AND ").In(column, chunk).Text(" ORDER BY uri, val, seq DESC");
      auto rows = db_->Exec(sql.sql(), PgTextParams(sql.params()));
      if (!rows.ok()) return LogError(rows.status());
      for (int i = 0; i < rows->rows(); ++i) {
        const bool active = rows->Int(i, 2) == 0 && (rows->IsNull(i, 3) || rows->Int(i, 3) > now_ms);
        if (active) out[std::string(rows->Text(i, 0))].emplace_back(rows->Text(i, 1));
      }
    }
    for (auto& [uri, values] : out) std::sort(values.begin(), values.end());
    return out;
  }

  void WriterLoop() {
    for (;;) {
      std::vector<Request> batch;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        std::size_t count = 0;
        while (!queue_.empty() && (batch.empty() || count + queue_.front().labels.size() <= options_.max_batch)) {
          count += queue_.front().labels.size();
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      Commit(batch);
    }
  }

  void Commit(std::vector<Request>& batch) {
    std::size_t count = 0;
    for (const Request& request : batch) count += request.invalid ? 0 : request.labels.size();
    const Status committed = count == 0 ? OkStatus() : db_->Transaction([&](PgConnection& c) -> Status {
      // The counter row: locked until this transaction ends (see the top of the file).
      auto head = c.Exec("UPDATE labeler_log_head SET seq = seq + $1 RETURNING seq", {std::to_string(count)});
      if (!head.ok()) return head.status();
      std::int64_t seq = head->Int(0, 0) - static_cast<std::int64_t>(count);
      std::vector<std::pair<const StoredLabel*, std::optional<std::int64_t>>> rows;
      for (Request& request : batch) {
        if (request.invalid) continue;
        for (std::size_t i = 0; i < request.labels.size(); ++i) {
          request.labels[i].seq = ++seq;
          rows.emplace_back(&request.labels[i], request.exp_ms[i]);
        }
      }
      if (Status inserted = InsertRows(c, rows); !inserted.ok()) return inserted;
      auto told = c.Exec("SELECT pg_notify($1, $2)", {std::string(kLabelChannel), std::to_string(seq)});
      return told.ok() ? OkStatus() : told.status();
    });
    if (!committed.ok()) {
      spdlog::error("label log: append failed requests={} error=\"{}\"", batch.size(), committed.message());
      for (Request& request : batch) {
        if (request.done) request.done(request.invalid ? InvalidLabel() : LogError(committed));
      }
      return;
    }
    // Delivered (with whatever other instances committed before) before the emitters hear back.
    if (Status delivered = CatchUp(); !delivered.ok()) {
      spdlog::error("label log: delivery after a commit failed error=\"{}\"", delivered.message());
    }
    for (Request& request : batch) {
      if (!request.done) continue;
      if (request.invalid) {
        request.done(InvalidLabel());
        continue;
      }
      std::vector<std::int64_t> seqs;
      for (const StoredLabel& label : request.labels) seqs.push_back(label.seq);
      request.done(std::move(seqs));
    }
  }

  std::shared_ptr<PgDb> db_;
  LabelStoreOptions options_;

  std::mutex deliver_mutex_;  // one delivery at a time, in seq order
  std::function<void(const std::vector<StoredLabel>&)> listener_;  // guarded by deliver_mutex_
  std::atomic<std::int64_t> delivered_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Request> queue_;  // guarded by mutex_
  bool stopping_ = false;      // guarded by mutex_
  std::thread writer_;         // last: started once everything above exists
};

}  // namespace

StatusOr<std::int64_t> LabelStore::CopyToPostgres(LabelStore& from, PgDb& to) {
  if (auto migrated = Migrate(to, kLabelStoreName, LabelStoreMigrations()); !migrated.ok()) {
    return Status(migrated.status().code(), "label log schema: " + migrated.status().message());
  }
  std::int64_t copied = 0;
  const Status done = to.Transaction([&](PgConnection& c) -> Status {
    auto present = c.Exec("SELECT count(*) FROM labeler_labels");
    if (!present.ok()) return present.status();
    if (present->Int(0, 0) != 0) {
      return Status(StatusCode::kFailedPrecondition, "the PostgreSQL label log already holds " +
                                                         std::to_string(present->Int(0, 0)) +
                                                         " labels: --copy fills an empty database only");
    }
    for (std::int64_t after = 0;;) {
      auto page = from.ReadAfter(after, 2000);
      if (!page.ok()) return page.status();
      if (page->empty()) break;
      std::vector<std::pair<const StoredLabel*, std::optional<std::int64_t>>> rows;
      for (const StoredLabel& stored : *page) {
        rows.emplace_back(&stored, stored.label.exp ? DatetimeToUnixMs(*stored.label.exp) : std::nullopt);
      }
      if (Status inserted = InsertRows(c, rows); !inserted.ok()) return inserted;
      copied += static_cast<std::int64_t>(page->size());
      after = page->back().seq;
    }
    // The head as the source had it (a restored log's head may lie past its last row).
    auto head = c.Exec("UPDATE labeler_log_head SET seq = $1", {std::to_string(from.head_seq())});
    return head.ok() ? OkStatus() : head.status();
  });
  if (!done.ok()) return LogError(done);
  return copied;
}

StatusOr<std::unique_ptr<LabelStore>> LabelStore::OpenPostgres(std::shared_ptr<PgDb> db, LabelStoreOptions options) {
  if (options.max_batch == 0) options.max_batch = 1;
  if (auto migrated = Migrate(*db, kLabelStoreName, LabelStoreMigrations()); !migrated.ok()) {
    return Status(migrated.status().code(), "label log schema: " + migrated.status().message());
  }
  auto head = db->Exec("SELECT seq FROM labeler_log_head");
  if (!head.ok()) return LogError(head.status());
  if (head->rows() != 1) return Status(StatusCode::kDataLoss, "label log: the seq counter row is missing");
  return std::unique_ptr<LabelStore>(std::make_unique<PgLabelStore>(std::move(db), options, head->Int(0, 0)));
}

}  // namespace plyr::labeler
