// Small POSIX file helpers: an owning file descriptor and the crash-safe write steps
// (fsync a file, fsync its directory, write a secret file with owner-only permissions).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

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

boost::system::error_code LastError();

// open(2) with O_CLOEXEC added; the error is errno's.
boost::system::result<UniqueFd> OpenFile(const std::filesystem::path& path, int flags, int mode = 0644);

// fsync(2) on the directory, so a rename or create inside it survives a crash.
boost::system::error_code SyncDirectory(const std::filesystem::path& dir);

// Writes `contents` to `path` atomically (temp file, fsync, rename, fsync dir) with `mode`.
// Never leaves a partial file at `path`.
boost::system::error_code WriteFileAtomically(const std::filesystem::path& path, std::string_view contents,
                                              int mode);

// Reads a small file whole (up to `limit` bytes; larger is an error).
boost::system::result<std::string> ReadSmallFile(const std::filesystem::path& path, std::size_t limit = 1 << 20);

}  // namespace plyr
