// LabelStore: the labeler's append-only label log, in SQLite (WAL, synchronous=FULL; below) or in
// PostgreSQL shared by several labeler instances (label_store_pg.cpp).
//
//   - `seq` is an AUTOINCREMENT rowid: strictly increasing, never reused, even after a crash.
//   - A label is visible (head_seq(), reads, the commit listener) only after its transaction is
//     durable, so nothing is ever sent that a crash could take back.
//   - Group commit: Append() queues labels for one writer thread, which takes everything queued
//     (up to `max_batch` labels) into one transaction, so concurrent emitters share an fsync.
//   - Rows keep the exact signed fields and the signed CBOR, so what is served is what was signed.
//   - Reads use their own connections (WAL readers never wait for the writer) and are blocking:
//     call them off the I/O threads.
//
// "Active" (one rule for every state query): for each (src, uri, val) the event with the highest
// seq wins; it is active when it is not a negation and has no `exp` in the past.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <boost/system/result.hpp>

#include "common/migrations.h"
#include "common/pg_db.h"
#include "common/sqlite_db.h"
#include "common/status.h"
#include "labeler/label.h"

namespace plyr::labeler {

class SigningKey;

struct LabelStoreOptions {
  std::size_t max_batch = 4096;  // labels per group-commit transaction
  std::size_t readers = 2;       // read connections
};

// A queryLabels request, already validated.
struct LabelQuery {
  std::vector<std::string> uri_patterns;  // exact URIs, or prefixes ending in '*'; "*" alone: all
  std::vector<std::string> sources;       // empty: any
  std::int64_t after_seq = 0;
  std::size_t limit = 50;
};

// The label log's name in schema_migrations (common/migrations.h).
inline constexpr std::string_view kLabelStoreName = "labeler.labels";
std::span<const Migration> LabelStoreMigrations();
// Where PostgreSQL announces a commit to the other labeler instances (its last seq).
inline constexpr std::string_view kLabelChannel = "plyr_labeler_labels";

class LabelStore {
 public:
  // Opens (creating) the log at `path` and starts the writer thread. Fails with a message that
  // starts "label log" and the code of what failed: the database's (SqliteDb's codes, DataLoss
  // for a file that is not a database), FailedPrecondition for a log of a newer schema version,
  // Internal when the writer thread cannot start.
  static StatusOr<std::unique_ptr<LabelStore>> Open(const std::filesystem::path& path, LabelStoreOptions options);
  // The log in PostgreSQL, shared by several labelers (label_store_pg.cpp explains the ordering).
  static StatusOr<std::unique_ptr<LabelStore>> OpenPostgres(std::shared_ptr<PgDb> db, LabelStoreOptions options);
  // Copies every label of `from` (with its seq) into the empty log of `to`, whose head becomes
  // from's; returns how many. FailedPrecondition when `to` holds labels already.
  static StatusOr<std::int64_t> CopyToPostgres(LabelStore& from, PgDb& to);
  virtual ~LabelStore() = default;  // finishes queued appends, then stops the writer

  // Queues signed labels (label and cbor filled by the caller; seq is assigned here). `done` runs on
  // the writer thread once they are durable, with their seqs in order, or with a failure (nothing
  // of this call stored): InvalidArgument when a label has an empty sig or cbor or an unparseable
  // `exp`; else the database's code when the transaction failed (every call sharing it fails too),
  // ResourceExhausted for a full disk.
  using AppendDone = std::function<void(StatusOr<std::vector<std::int64_t>>)>;
  virtual void Append(std::vector<StoredLabel> labels, AppendDone done) = 0;

  // Called after each durable commit, before the Append callbacks, with the committed labels in
  // seq order: every label exactly once, in seq order, without gaps (on PostgreSQL, the other
  // instances' labels too, as they commit: CatchUp). Set once, before the first Append.
  virtual void SetCommitListener(std::function<void(const std::vector<StoredLabel>&)> listener) = 0;
  // On a shared log: reads what other instances committed since the last delivery and hands it
  // to the commit listener (called when one of them announces a commit). Nothing on SQLite.
  virtual Status CatchUp() { return OkStatus(); }

  // Re-signs every label of the log at `path` with `key`, in one transaction: after a signing-key
  // rotation, so that what is served verifies under the DID document's new key. seq, cts and the
  // other fields stay; sig and the signed CBOR change. For a labeler that is not running (it
  // would go on serving frames it built before). Returns how many labels were re-signed. Fails
  // with the database's code: when the log cannot be opened (SQLite's message), or when the
  // transaction fails ("re-signing failed, nothing changed: ...").
  static StatusOr<std::size_t> ResignAll(const std::filesystem::path& path, const SigningKey& key);

  // The highest seq delivered to the commit listener (0 when the log is empty; after a reopen,
  // the highest seq ever handed out, which after a restore from backup the operator may have set
  // higher). Thread-safe.
  virtual std::int64_t head_seq() const = 0;

  // Reads fail with the database's code and message.
  // Labels with seq > after_seq, in seq order, at most `limit`.
  virtual StatusOr<std::vector<StoredLabel>> ReadAfter(std::int64_t after_seq, std::size_t limit) = 0;
  // queryLabels: labels matching the query, seq order, at most `limit`; no patterns match nothing.
  // InvalidArgument for a '*' anywhere but at the end of a pattern.
  virtual StatusOr<std::vector<StoredLabel>> Query(const LabelQuery& query) = 0;

  // State queries under the "active" rule above, for labels whose src is `src`:
  // uri -> active values (sorted), for the given uris; uris with none are omitted.
  virtual StatusOr<std::map<std::string, std::vector<std::string>>> ActiveValuesByUri(
      const std::string& src, const std::vector<std::string>& uris) = 0;
  // uri -> active values among `values` (sorted), over every uri with one.
  virtual StatusOr<std::map<std::string, std::vector<std::string>>> ActiveUrisByValue(
      const std::string& src, const std::vector<std::string>& values) = 0;
  // The uris among `uris` whose latest `val` event is a negation (sorted, without duplicates).
  virtual StatusOr<std::vector<std::string>> NegatedUris(const std::string& src, const std::vector<std::string>& uris,
                                                         const std::string& val) = 0;
};

}  // namespace plyr::labeler
