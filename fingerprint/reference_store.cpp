#include "fingerprint/reference_store.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace plyr::fingerprint {

namespace {

// Version 1 is the schema of the builds before migrations (IF NOT EXISTS: adopted as it is).
constexpr Migration kMigrations[] = {
    {"references and their items",
     "CREATE TABLE IF NOT EXISTS refs ("
     "  row INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, artist TEXT NOT NULL, owner_did TEXT NOT NULL,"
     "  isrc TEXT NOT NULL, external_ids TEXT NOT NULL, duration_ms INTEGER NOT NULL,"
     "  items_hash TEXT NOT NULL UNIQUE, created_ms INTEGER NOT NULL, items BLOB NOT NULL) STRICT;"
     "CREATE INDEX IF NOT EXISTS refs_by_isrc ON refs(isrc) WHERE isrc != ''",
     "CREATE TABLE IF NOT EXISTS refs ("
     "  row BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
     "  id TEXT NOT NULL UNIQUE, title TEXT NOT NULL, artist TEXT NOT NULL, owner_did TEXT NOT NULL,"
     "  isrc TEXT NOT NULL, external_ids TEXT NOT NULL, duration_ms BIGINT NOT NULL,"
     "  items_hash TEXT NOT NULL UNIQUE, created_ms BIGINT NOT NULL, items BYTEA NOT NULL);"
     "CREATE INDEX IF NOT EXISTS refs_by_isrc ON refs(isrc) WHERE isrc <> ''"},
};

constexpr std::string_view kColumns =
    "row, id, title, artist, owner_did, isrc, external_ids, duration_ms, items_hash, created_ms";

// A full disk stays ResourceExhausted (507 to the caller, who may retry once space is freed), a
// schema newer than this build FailedPrecondition; anything else is Internal.
Status DbError(const Status& failed) {
  const StatusCode code = failed.code() == StatusCode::kResourceExhausted || failed.code() == StatusCode::kFailedPrecondition
                              ? failed.code()
                              : StatusCode::kInternal;
  return Status(code, "reference database: " + failed.message());
}

ReferenceRecord FromRow(const SqlRow& row, bool with_items) {
  ReferenceRecord r;
  r.row = row.Int(0);
  r.id = row.Text(1);
  r.title = row.Text(2);
  r.artist = row.Text(3);
  r.owner_did = row.Text(4);
  r.isrc = row.Text(5);
  r.external_ids_json = row.Text(6);
  r.duration_s = static_cast<double>(row.Int(7)) / 1000;
  r.items_hash = row.Text(8);
  r.created_ms = row.Int(9);
  if (with_items) {
    const std::string_view bytes = row.Bytes(10);
    r.items.resize(bytes.size() / 4);
    std::memcpy(r.items.data(), bytes.data(), r.items.size() * 4);
  }
  return r;
}

class SqliteReferenceStore final : public ReferenceStore {
 public:
  explicit SqliteReferenceStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  Status Insert(ReferenceRecord& record) override;
  Status InsertMany(std::vector<ReferenceRecord>& records) override;
  Status Delete(const std::string& id) override;
  StatusOr<ReferenceRecord> Get(const std::string& id, bool with_items) const override;
  StatusOr<std::vector<ReferenceRecord>> List(std::int64_t before_row, std::size_t limit) const override;
  Status LoadAll(const std::function<void(std::vector<ReferenceRecord>&&)>& batch,
                 std::size_t batch_size) const override;
  StatusOr<std::vector<std::int64_t>> Rows() const override;
  StatusOr<std::vector<ReferenceRecord>> GetRows(const std::vector<std::int64_t>& rows) const override;

 private:
  std::unique_ptr<SqliteDb> db_;
};

}  // namespace

std::span<const Migration> ReferenceStoreMigrations() { return kMigrations; }

std::string ReferenceStore::HashItems(const media::FingerprintItems& items) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(items.data(), items.size() * 4, digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

StatusOr<std::unique_ptr<ReferenceStore>> OpenSqliteReferenceStore(std::unique_ptr<SqliteDb> db) {
  if (auto migrated = Migrate(*db, kReferenceStoreName, kMigrations); !migrated.ok()) {
    return DbError(migrated.status());
  }
  return std::unique_ptr<ReferenceStore>(new SqliteReferenceStore(std::move(db)));
}

Status SqliteReferenceStore::Insert(ReferenceRecord& r) {
  r.items_hash = HashItems(r.items);
  std::string existing;
  const Status stored = db_->Transaction([&] {
    Status found = db_->Run("SELECT id FROM refs WHERE items_hash = ?1", {r.items_hash},
                            [&](const SqlRow& row) { existing = row.Text(0); });
    if (!found.ok() || !existing.empty()) return found;
    const std::string_view bytes(reinterpret_cast<const char*>(r.items.data()), r.items.size() * 4);
    Status inserted =
        db_->Run("INSERT INTO refs (id, title, artist, owner_did, isrc, external_ids, duration_ms, items_hash, "
                 "created_ms, items) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                 {r.id, r.title, r.artist, r.owner_did, r.isrc, r.external_ids_json,
                  static_cast<std::int64_t>(std::llround(r.duration_s * 1000)), r.items_hash, r.created_ms,
                  SqlBlob{bytes}});
    if (inserted.ok()) r.row = db_->last_insert_rowid();
    return inserted;
  });
  if (!stored.ok()) return DbError(stored);
  if (!existing.empty()) {
    return Status(StatusCode::kAlreadyExists, "this fingerprint is already registered as reference " + existing);
  }
  return OkStatus();
}

Status SqliteReferenceStore::InsertMany(std::vector<ReferenceRecord>& records) {
  const Status stored = db_->Transaction([&] {
    for (auto& r : records) {
      r.items_hash = HashItems(r.items);
      std::string existing;
      Status found = db_->Run("SELECT id FROM refs WHERE items_hash = ?1", {r.items_hash},
                              [&](const SqlRow& row) { existing = row.Text(0); });
      if (!found.ok()) return found;
      if (!existing.empty()) {
        return Status(StatusCode::kAlreadyExists, "a fingerprint of the batch is already registered as reference " + existing);
      }
      const std::string_view bytes(reinterpret_cast<const char*>(r.items.data()), r.items.size() * 4);
      Status inserted = db_->Run("INSERT INTO refs (id, title, artist, owner_did, isrc, external_ids, duration_ms, "
                                 "items_hash, created_ms, items) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                                 {r.id, r.title, r.artist, r.owner_did, r.isrc, r.external_ids_json,
                                  static_cast<std::int64_t>(std::llround(r.duration_s * 1000)), r.items_hash,
                                  r.created_ms, SqlBlob{bytes}});
      if (!inserted.ok()) return inserted;
      r.row = db_->last_insert_rowid();
    }
    return OkStatus();
  });
  if (stored.code() == StatusCode::kAlreadyExists) return stored;
  if (!stored.ok()) return DbError(stored);
  return OkStatus();
}

Status SqliteReferenceStore::Delete(const std::string& id) {
  bool found = false;
  const Status deleted = db_->Transaction([&] {
    Status looked_up = db_->Run("SELECT 1 FROM refs WHERE id = ?1", {id}, [&](const SqlRow&) { found = true; });
    if (!looked_up.ok() || !found) return looked_up;
    return db_->Run("DELETE FROM refs WHERE id = ?1", {id});
  });
  if (!deleted.ok()) return DbError(deleted);
  if (!found) return Status(StatusCode::kNotFound, "no reference with this id");
  return OkStatus();
}

StatusOr<ReferenceRecord> SqliteReferenceStore::Get(const std::string& id, bool with_items) const {
  std::optional<ReferenceRecord> found;
  const std::string sql = "SELECT " + std::string(kColumns) + ", items FROM refs WHERE id = ?1";
  if (Status read = db_->Run(sql, {id}, [&](const SqlRow& row) { found = FromRow(row, with_items); }); !read.ok()) {
    return DbError(read);
  }
  if (!found) return Status(StatusCode::kNotFound, "no reference with this id");
  return std::move(*found);
}

StatusOr<std::vector<ReferenceRecord>> SqliteReferenceStore::List(std::int64_t before_row, std::size_t limit) const {
  std::vector<ReferenceRecord> out;
  const std::string sql = "SELECT " + std::string(kColumns) + " FROM refs WHERE row < ?1 ORDER BY row DESC LIMIT ?2";
  const std::int64_t before = before_row > 0 ? before_row : std::numeric_limits<std::int64_t>::max();
  if (Status read = db_->Run(sql, {before, static_cast<std::int64_t>(limit)},
                             [&](const SqlRow& row) { out.push_back(FromRow(row, false)); });
      !read.ok()) {
    return DbError(read);
  }
  return out;
}

Status SqliteReferenceStore::LoadAll(const std::function<void(std::vector<ReferenceRecord>&&)>& batch,
                               std::size_t batch_size) const {
  std::int64_t after = 0;
  const std::string sql = "SELECT " + std::string(kColumns) + ", items FROM refs WHERE row > ?1 ORDER BY row LIMIT ?2";
  while (true) {
    std::vector<ReferenceRecord> records;
    if (Status read = db_->Run(sql, {after, static_cast<std::int64_t>(batch_size)},
                               [&](const SqlRow& row) { records.push_back(FromRow(row, true)); });
        !read.ok()) {
      return DbError(read);
    }
    if (records.empty()) return OkStatus();
    after = records.back().row;
    batch(std::move(records));
  }
}

StatusOr<std::vector<std::int64_t>> SqliteReferenceStore::Rows() const {
  std::vector<std::int64_t> rows;
  if (Status read = db_->Run("SELECT row FROM refs ORDER BY row", {}, [&](const SqlRow& row) { rows.push_back(row.Int(0)); });
      !read.ok()) {
    return DbError(read);
  }
  return rows;
}

StatusOr<std::vector<ReferenceRecord>> SqliteReferenceStore::GetRows(const std::vector<std::int64_t>& rows) const {
  std::vector<ReferenceRecord> out;
  const std::string sql = "SELECT " + std::string(kColumns) + ", items FROM refs WHERE row = ?1";
  for (std::int64_t wanted : rows) {
    if (Status read = db_->Run(sql, {wanted}, [&](const SqlRow& row) { out.push_back(FromRow(row, true)); }); !read.ok()) {
      return DbError(read);
    }
  }
  std::sort(out.begin(), out.end(), [](const ReferenceRecord& a, const ReferenceRecord& b) { return a.row < b.row; });
  return out;
}

}  // namespace plyr::fingerprint
