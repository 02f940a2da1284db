// Small POSIX file helpers: an owning file descriptor and the crash-safe write steps
// (fsync a file, fsync its directory, write a secret file with owner-only permissions).
//
// Failures are Status values whose message names the file and the system's reason. Codes:
// NotFound for a missing file, ResourceExhausted for a full disk (ENOSPC, EFBIG for a file size
// limit, EDQUOT), AlreadyExists for O_EXCL on an existing file, InvalidArgument for a file larger
// than a read's limit, Internal for anything else.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <boost/system/error_code.hpp>

#include "common/status.h"

namespace plyr {

// Owns a file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset();

 private:
  int fd_ = -1;
};

// errno as an error code, for code that works in Asio's error codes (a socket, a stream file).
boost::system::error_code LastError();

// A failed file operation as a Status, coded as above: "`what`: <the system's reason>".
Status FileError(std::string_view what, int error_number);
Status FileError(std::string_view what, const boost::system::error_code& ec);

// open(2) with O_CLOEXEC added.
StatusOr<UniqueFd> OpenFile(const std::filesystem::path& path, int flags, int mode = 0644);

// fsync(2) on the directory, so a rename or create inside it survives a crash.
Status SyncDirectory(const std::filesystem::path& dir);

// Writes `contents` to `path` atomically (temp file, fsync, rename, fsync dir) with `mode`.
// Never leaves a partial file at `path`.
Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents, int mode);

// Reads a small file whole (up to `limit` bytes; a larger file is InvalidArgument).
StatusOr<std::string> ReadSmallFile(const std::filesystem::path& path, std::size_t limit = 1 << 20);

}  // namespace plyr
