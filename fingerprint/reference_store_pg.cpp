// The reference store on PostgreSQL: the same table as on SQLite (BYTEA items, an identity row),
// reached through a PgDb pool. Every call blocks on the network: the service calls it from its
// worker threads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "fingerprint/reference_store.h"

namespace plyr::fingerprint {

namespace {

constexpr std::string_view kColumns =
    "row, id, title, artist, owner_did, isrc, external_ids, duration_ms, items_hash, created_ms";

// Codes a caller can act on pass through (a full disk, an unreachable server, a schema newer than
// this build); anything else is Internal.
Status DbError(const Status& failed) {
  const StatusCode code = failed.code();
  const bool kept = code == StatusCode::kResourceExhausted || code == StatusCode::kUnavailable ||
                    code == StatusCode::kFailedPrecondition;
  return Status(kept ? code : StatusCode::kInternal, "reference database: " + failed.message());
}

ReferenceRecord FromRow(const PgResult& rows, int i, bool with_items) {
  ReferenceRecord r;
  r.row = rows.Int(i, 0);
  r.id = rows.Text(i, 1);
  r.title = rows.Text(i, 2);
  r.artist = rows.Text(i, 3);
  r.owner_did = rows.Text(i, 4);
  r.isrc = rows.Text(i, 5);
  r.external_ids_json = rows.Text(i, 6);
  r.duration_s = static_cast<double>(rows.Int(i, 7)) / 1000;
  r.items_hash = rows.Text(i, 8);
  r.created_ms = rows.Int(i, 9);
  if (with_items) {
    const std::string bytes = rows.Bytes(i, 10);
    r.items.resize(bytes.size() / 4);
    std::memcpy(r.items.data(), bytes.data(), r.items.size() * 4);
  }
  return r;
}

// The insert's parameters, in the column order of kInsert.
PgParams InsertParams(const ReferenceRecord& r) {
  const std::string_view bytes(reinterpret_cast<const char*>(r.items.data()), r.items.size() * 4);
  return {r.id,
          r.title,
          r.artist,
          r.owner_did,
          r.isrc,
          r.external_ids_json,
          std::to_string(std::llround(r.duration_s * 1000)),
          r.items_hash,
          std::to_string(r.created_ms),
          PgBytea(bytes)};
}

constexpr std::string_view kInsert =
    "INSERT INTO refs (id, title, artist, owner_did, isrc, external_ids, duration_ms, items_hash, created_ms, items) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

class PgReferenceStore final : public ReferenceStore {
 public:
  explicit PgReferenceStore(std::shared_ptr<PgDb> db) : db_(std::move(db)) {}

  Status Insert(ReferenceRecord& r) override {
    r.items_hash = HashItems(r.items);
    // One statement, so two instances registering the same work at once cannot both win; the
    // announcement goes out with the commit.
    auto inserted = db_->Exec("WITH added AS (" + std::string(kInsert) +
                                  " ON CONFLICT (items_hash) DO NOTHING RETURNING row) "
                                  "SELECT row, pg_notify($11, 'add ' || row) FROM added",
                              WithChannel(InsertParams(r)));
    if (!inserted.ok()) return DbError(inserted.status());
    if (inserted->rows() == 1) {
      r.row = inserted->Int(0, 0);
      return OkStatus();
    }
    auto existing = db_->Exec("SELECT id FROM refs WHERE items_hash = $1", {r.items_hash});
    if (!existing.ok()) return DbError(existing.status());
    const std::string id = existing->rows() == 1 ? std::string(existing->Text(0, 0)) : std::string("(just deleted)");
    return Status(StatusCode::kAlreadyExists, "this fingerprint is already registered as reference " + id);
  }

  Status InsertMany(std::vector<ReferenceRecord>& records) override {
    const Status stored = db_->Transaction([&](PgConnection& c) -> Status {
      for (auto& r : records) {
        r.items_hash = HashItems(r.items);
        auto inserted = c.Exec("WITH added AS (" + std::string(kInsert) +
                                   " RETURNING row) SELECT row, pg_notify($11, 'add ' || row) FROM added",
                               WithChannel(InsertParams(r)));
        if (!inserted.ok()) return inserted.status();
        r.row = inserted->Int(0, 0);
      }
      return OkStatus();
    });
    if (stored.code() == StatusCode::kAlreadyExists) return stored;
    return stored.ok() ? stored : DbError(stored);
  }

  Status Delete(const std::string& id) override {
    auto deleted = db_->Exec(
        "WITH removed AS (DELETE FROM refs WHERE id = $1 RETURNING row) "
        "SELECT row, pg_notify($2, 'del ' || row) FROM removed",
        {id, std::string(kReferenceChannel)});
    if (!deleted.ok()) return DbError(deleted.status());
    if (deleted->rows() == 0) return Status(StatusCode::kNotFound, "no reference with this id");
    return OkStatus();
  }

  StatusOr<ReferenceRecord> Get(const std::string& id, bool with_items) const override {
    auto read = db_->Exec("SELECT " + std::string(kColumns) + (with_items ? ", items" : "") + " FROM refs WHERE id = $1",
                          {id});
    if (!read.ok()) return DbError(read.status());
    if (read->rows() == 0) return Status(StatusCode::kNotFound, "no reference with this id");
    return FromRow(*read, 0, with_items);
  }

  StatusOr<std::vector<ReferenceRecord>> List(std::int64_t before_row, std::size_t limit) const override {
    const std::int64_t before = before_row > 0 ? before_row : std::numeric_limits<std::int64_t>::max();
    auto read = db_->Exec("SELECT " + std::string(kColumns) + " FROM refs WHERE row < $1 ORDER BY row DESC LIMIT $2",
                          {std::to_string(before), std::to_string(limit)});
    if (!read.ok()) return DbError(read.status());
    std::vector<ReferenceRecord> out;
    for (int i = 0; i < read->rows(); ++i) out.push_back(FromRow(*read, i, false));
    return out;
  }

  Status LoadAll(const std::function<void(std::vector<ReferenceRecord>&&)>& batch,
                 std::size_t batch_size) const override {
    std::int64_t after = 0;
    const std::string sql = "SELECT " + std::string(kColumns) + ", items FROM refs WHERE row > $1 ORDER BY row LIMIT $2";
    while (true) {
      auto read = db_->Exec(sql, {std::to_string(after), std::to_string(batch_size)});
      if (!read.ok()) return DbError(read.status());
      if (read->rows() == 0) return OkStatus();
      std::vector<ReferenceRecord> records;
      records.reserve(static_cast<std::size_t>(read->rows()));
      for (int i = 0; i < read->rows(); ++i) records.push_back(FromRow(*read, i, true));
      after = records.back().row;
      batch(std::move(records));
    }
  }

  StatusOr<std::vector<std::int64_t>> Rows() const override {
    auto read = db_->Exec("SELECT row FROM refs ORDER BY row");
    if (!read.ok()) return DbError(read.status());
    std::vector<std::int64_t> rows;
    rows.reserve(static_cast<std::size_t>(read->rows()));
    for (int i = 0; i < read->rows(); ++i) rows.push_back(read->Int(i, 0));
    return rows;
  }

  StatusOr<std::vector<ReferenceRecord>> GetRows(const std::vector<std::int64_t>& rows) const override {
    std::vector<ReferenceRecord> out;
    // In slices, so that one statement's answer stays a few megabytes.
    constexpr std::size_t kSlice = 256;
    for (std::size_t start = 0; start < rows.size(); start += kSlice) {
      std::string list = "{";
      for (std::size_t i = start; i < std::min(rows.size(), start + kSlice); ++i) {
        list += (i == start ? "" : ",") + std::to_string(rows[i]);
      }
      list += "}";
      auto read = db_->Exec("SELECT " + std::string(kColumns) + ", items FROM refs WHERE row = ANY($1::bigint[]) ORDER BY row",
                            {list});
      if (!read.ok()) return DbError(read.status());
      for (int i = 0; i < read->rows(); ++i) out.push_back(FromRow(*read, i, true));
    }
    std::sort(out.begin(), out.end(), [](const ReferenceRecord& a, const ReferenceRecord& b) { return a.row < b.row; });
    return out;
  }

 private:
  static PgParams WithChannel(PgParams params) {
    params.emplace_back(std::string(kReferenceChannel));
    return params;
  }

  std::shared_ptr<PgDb> db_;
};

}  // namespace

StatusOr<std::unique_ptr<ReferenceStore>> OpenPgReferenceStore(std::shared_ptr<PgDb> db) {
  if (auto migrated = Migrate(*db, kReferenceStoreName, ReferenceStoreMigrations()); !migrated.ok()) {
    return DbError(migrated.status());
  }
  return std::unique_ptr<ReferenceStore>(new PgReferenceStore(std::move(db)));
}

}  // namespace plyr::fingerprint
