// BlobStore: content-addressed files on local disk.
//
// A blob's id is the first 16 hex characters of the SHA-256 of its bytes (plyr.fm's file_id
// scheme). Bytes are streamed into a temporary file, hashed on the way, fsynced, then renamed
// into place and the directory fsynced: a crash at any point leaves either no file under the id
// or the complete one, never a partial file. Leftover temporaries are removed by Open().
//
// Layout: <root>/<id[0..2]>/<id>, temporaries in <root>/.tmp/.
// Thread-safe: writers are independent; committing the same bytes twice is idempotent.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include "common/file_util.h"
#include "common/status.h"
#include "common/net.h"

namespace plyr {

struct BlobInfo {
  std::string file_id;
  std::uint64_t size = 0;
};

class BlobStore {
 public:
  // Failures carry a message naming what failed, and a code: ResourceExhausted for a full disk
  // (ENOSPC, a file size limit, a quota), NotFound for a missing blob, InvalidArgument for an id
  // that is not one, Internal for the rest.

  // Opens (creating) the store at `root` and clears leftover temporaries.
  static StatusOr<std::unique_ptr<BlobStore>> Open(const std::filesystem::path& root);

  // True for exactly 16 lowercase hex characters. Anything else never reaches the filesystem.
  static bool IsValidId(std::string_view id);

  // A blob being written. Destroying an uncommitted writer deletes its temporary file.
  class Writer {
   public:
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    // Appends bytes (io_uring write on the caller's executor) and feeds the hash.
    // ResourceExhausted when the disk is full; FailedPrecondition after Commit.
    asio::awaitable<Status> Write(std::span<const char> bytes);
    std::uint64_t size() const { return size_; }
    // fsyncs, names the blob by its hash and moves it into place. Calling it twice is an error.
    StatusOr<BlobInfo> Commit();
    // The temporary file holding what was written so far: readable until Commit or destruction,
    // for a caller that reads an upload once and never keeps it (a fingerprint query).
    const std::filesystem::path& temp_path() const;

   private:
    friend class BlobStore;
    struct State;
    explicit Writer(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
    std::uint64_t size_ = 0;
  };

  // Starts a new blob whose writes run on `executor`.
  StatusOr<std::unique_ptr<Writer>> Begin(const asio::any_io_executor& executor);

  // Opens a blob for reading; a missing blob is NotFound.
  struct OpenBlob {
    UniqueFd fd;
    std::uint64_t size = 0;
    std::int64_t mtime_seconds = 0;
  };
  StatusOr<OpenBlob> OpenForRead(std::string_view id) const;
  // Like OpenForRead, but shares one open descriptor per blob among callers: blobs never change
  // once named, so a descriptor stays valid for as long as anyone holds it. Keeps at most
  // kOpenCacheEntries descriptors cached (the cache is emptied when full). Thread-safe.
  StatusOr<std::shared_ptr<const OpenBlob>> OpenShared(std::string_view id);
  static constexpr std::size_t kOpenCacheEntries = 256;
  bool Contains(std::string_view id) const;
  // Removes a blob (unlink, then the folder fsynced) and forgets its shared descriptor, so that
  // OpenShared and OpenForRead miss at once; a reader already holding the descriptor finishes.
  // A missing blob is NotFound. Blocking: call off the I/O threads.
  Status Remove(std::string_view id);
  std::filesystem::path PathFor(std::string_view id) const;
  const std::filesystem::path& root() const { return root_; }

 private:
  explicit BlobStore(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
  std::mutex open_cache_mutex_;
  std::unordered_map<std::string, std::shared_ptr<const OpenBlob>> open_cache_;  // guarded by open_cache_mutex_
};

}  // namespace plyr
