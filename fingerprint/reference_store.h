// ReferenceStore: the registered reference works, the index's source of truth, on SQLite (the
// embedded default: WAL, synchronous=FULL) or on PostgreSQL (database.url). A reference is
// committed before it is acknowledged, so it survives kill -9; the in-memory index is rebuilt
// from here at start. Both implementations pass the same tests
// (tests/fingerprint/reference_store_test.cpp).
//
// Failures: AlreadyExists, NotFound as stated per call; ResourceExhausted for a full disk;
// Unavailable when PostgreSQL cannot be reached; Internal otherwise. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/media/chromaprint.h"
#include "common/migrations.h"
#include "common/pg_db.h"
#include "common/sqlite_db.h"
#include "common/status.h"

namespace plyr::fingerprint {

struct ReferenceRecord {
  std::int64_t row = 0;       // the index's key
  std::string id;             // public id: 16 hex
  std::string title;
  std::string artist;
  std::string owner_did;      // who owns the work, when known (self-match suppression)
  std::string isrc;
  std::string external_ids_json = "{}";  // other identifiers the operator keeps
  double duration_s = 0;
  std::string items_hash;     // SHA-256 of the items: the same fingerprint registered twice
  std::int64_t created_ms = 0;
  media::FingerprintItems items;
};

class ReferenceStore {
 public:
  virtual ~ReferenceStore() = default;

  // Inserts and commits; fills record.row. AlreadyExists when the same items are registered
  // (the message names the existing id).
  virtual Status Insert(ReferenceRecord& record) = 0;
  // Inserts many in one transaction (bulk loading) and fills their rows; nothing is inserted when
  // one of them is already stored.
  virtual Status InsertMany(std::vector<ReferenceRecord>& records) = 0;
  // NotFound when there is no such id.
  virtual Status Delete(const std::string& id) = 0;
  // Metadata without the items unless `with_items`.
  virtual StatusOr<ReferenceRecord> Get(const std::string& id, bool with_items) const = 0;
  // Newest first, after `before_row` (0: from the newest), at most `limit`.
  virtual StatusOr<std::vector<ReferenceRecord>> List(std::int64_t before_row, std::size_t limit) const = 0;
  // Every reference with its items, in row order, handed over in batches (for loading the index).
  virtual Status LoadAll(const std::function<void(std::vector<ReferenceRecord>&&)>& batch,
                         std::size_t batch_size) const = 0;

  // Every stored row, ascending (to compare an index with the store).
  virtual StatusOr<std::vector<std::int64_t>> Rows() const = 0;
  // The references stored under `rows`, with their items, in row order (rows not stored are left out).
  virtual StatusOr<std::vector<ReferenceRecord>> GetRows(const std::vector<std::int64_t>& rows) const = 0;

  static std::string HashItems(const media::FingerprintItems& items);
};

// On PostgreSQL every committed insert and delete is announced on this channel ("add <row>",
// "del <row>"), in the same transaction, so instances sharing the database update their indexes
// (common/pg_listener.h).
inline constexpr std::string_view kReferenceChannel = "plyr_fingerprint_refs";

// The schema, per version, in both dialects (common/migrations.h); its store name in
// schema_migrations is kReferenceStoreName.
inline constexpr std::string_view kReferenceStoreName = "fingerprint.references";
std::span<const Migration> ReferenceStoreMigrations();

// Opens the store on `db`, migrating its schema first.
StatusOr<std::unique_ptr<ReferenceStore>> OpenSqliteReferenceStore(std::unique_ptr<SqliteDb> db);
StatusOr<std::unique_ptr<ReferenceStore>> OpenPgReferenceStore(std::shared_ptr<PgDb> db);

}  // namespace plyr::fingerprint
