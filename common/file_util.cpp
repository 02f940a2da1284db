#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <random>

namespace plyr {

void UniqueFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

boost::system::error_code LastError() { return {errno, boost::system::system_category()}; }

Status FileError(std::string_view what, int error_number) {
  StatusCode code = StatusCode::kInternal;
  switch (error_number) {
    case ENOENT: code = StatusCode::kNotFound; break;
    case EEXIST: code = StatusCode::kAlreadyExists; break;
    case ENOSPC:
    case EFBIG:
    case EDQUOT: code = StatusCode::kResourceExhausted; break;
    default: break;
  }
  return Status(code, std::string(what) + ": " + std::system_category().message(error_number));
}

Status FileError(std::string_view what, const boost::system::error_code& ec) {
  if (ec.category() == boost::system::system_category() || ec.category() == boost::system::generic_category()) {
    return FileError(what, ec.value());
  }
  return Status(StatusCode::kInternal, std::string(what) + ": " + ec.message());
}

StatusOr<UniqueFd> OpenFile(const std::filesystem::path& path, int flags, int mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return FileError("cannot open " + path.string(), errno);
  return UniqueFd(fd);
}

Status SyncDirectory(const std::filesystem::path& dir) {
  auto fd = OpenFile(dir, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.status();
  if (::fsync(fd->get()) != 0) return FileError("cannot sync " + dir.string(), errno);
  return OkStatus();
}

namespace {

// 0 or the errno of the write that failed.
int WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

}  // namespace

Status WriteFileAtomically(const std::filesystem::path& path, std::string_view contents, int mode) {
  std::random_device rd;
  auto tmp = path;
  tmp += ".tmp-" + std::to_string(rd());
  auto fd = OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
  if (!fd.ok()) return fd.status();
  // The umask may have narrowed `mode`; a secret file must end up exactly as asked.
  int failed = ::fchmod(fd->get(), static_cast<mode_t>(mode)) != 0 ? errno : 0;
  if (failed == 0) failed = WriteAll(fd->get(), contents);
  if (failed == 0 && ::fsync(fd->get()) != 0) failed = errno;
  if (failed != 0) {
    ::unlink(tmp.c_str());
    return FileError("cannot write " + path.string(), failed);
  }
  fd->Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error_number = errno;
    ::unlink(tmp.c_str());
    return FileError("cannot write " + path.string(), error_number);
  }
  return SyncDirectory(path.parent_path().empty() ? "." : path.parent_path());
}

StatusOr<std::string> ReadSmallFile(const std::filesystem::path& path, std::size_t limit) {
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileError("cannot read " + path.string(), errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > limit) {
      return Status(StatusCode::kInvalidArgument,
                    path.string() + " is larger than " + std::to_string(limit) + " bytes");
    }
  }
  return out;
}

}  // namespace plyr
