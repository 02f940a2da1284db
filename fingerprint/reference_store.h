// ReferenceStore: the registered reference works in SQLite (WAL, synchronous=FULL), the index's
// source of truth. A reference is committed before it is acknowledged, so it survives kill -9;
// the in-memory index is rebuilt from here at start.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/media/chromaprint.h"
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
  static StatusOr<std::unique_ptr<ReferenceStore>> Open(std::unique_ptr<SqliteDb> db);

  // Inserts and commits; fills record.row. AlreadyExists when the same items are registered
  // (the message names the existing id).
  Status Insert(ReferenceRecord& record);
  // Inserts many in one transaction (bulk loading) and fills their rows; nothing is inserted when
  // one of them is already stored.
  Status InsertMany(std::vector<ReferenceRecord>& records);
  // NotFound when there is no such id.
  Status Delete(const std::string& id);
  // Metadata without the items unless `with_items`.
  StatusOr<ReferenceRecord> Get(const std::string& id, bool with_items) const;
  // Newest first, after `before_row` (0: from the newest), at most `limit`.
  StatusOr<std::vector<ReferenceRecord>> List(std::int64_t before_row, std::size_t limit) const;
  // Every reference with its items, in row order, handed over in batches (for loading the index).
  Status LoadAll(const std::function<void(std::vector<ReferenceRecord>&&)>& batch, std::size_t batch_size) const;

  static std::string HashItems(const media::FingerprintItems& items);

 private:
  explicit ReferenceStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  std::unique_ptr<SqliteDb> db_;
};

}  // namespace plyr::fingerprint
