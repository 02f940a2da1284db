// HotBlobCache: with an object store, the copies of the most served files the streamer keeps in its
// local blob folder, within a byte budget; the least recently served go first. A copy is served
// like any local blob (sendfile), instead of a ranged read from the store per request
// (bench/RESULTS.md, "Scale-out": about 40 µs of CPU for a 64 KiB range from disk against 300 µs
// proxied).
//
// The index is in memory; the bytes are the BlobStore's files, content-addressed, so a copy is
// either whole or absent. Thread-safe. The caller does the file work (fetching, unlinking) off
// the I/O threads; this class decides.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/blob_store.h"

namespace plyr::streamer {

class HotBlobCache {
 public:
  HotBlobCache(BlobStore& blobs, std::uint64_t budget_bytes) : blobs_(blobs), budget_(budget_bytes) {}

  // Indexes the copies the folder holds (a restart keeps its cache); returns those beyond the
  // budget, for the caller to remove. Blocking (reads the folder).
  std::vector<std::string> Load();

  // A copy to serve, if one is cached (and counts as served now).
  std::shared_ptr<const BlobStore::OpenBlob> Find(const std::string& file_id);

  // Whether to fetch a copy of `size` bytes now: it fits an eighth of the budget (one large file
  // does not flush the rest) and is not being fetched already. True marks it as being fetched.
  bool BeginFill(const std::string& file_id, std::uint64_t size);
  // The fetch ended: `stored` when the copy is in the folder. Returns the copies to remove to get
  // back within the budget (the least recently served first).
  std::vector<std::string> EndFill(const std::string& file_id, std::uint64_t size, bool stored);

  // The file is gone (a takedown): never served from here again. The caller removes the copy.
  void Forget(const std::string& file_id);

  std::uint64_t bytes() const;
  std::size_t entries() const;

 private:
  struct Entry {
    std::uint64_t size = 0;
    std::list<std::string>::iterator recency;  // position in recency_ (front: most recent)
  };
  // Removes from the index until it fits; the removed ids. Caller holds mutex_.
  std::vector<std::string> TrimLocked();

  BlobStore& blobs_;
  const std::uint64_t budget_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mutex_
  std::list<std::string> recency_;                  // guarded by mutex_
  std::unordered_set<std::string> filling_;         // guarded by mutex_
  std::uint64_t bytes_ = 0;                         // guarded by mutex_
};

}  // namespace plyr::streamer
