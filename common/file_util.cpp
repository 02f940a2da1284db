#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>

namespace plyr {

void UniqueFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

boost::system::error_code LastError() { return {errno, boost::system::system_category()}; }

boost::system::result<UniqueFd> OpenFile(const std::filesystem::path& path, int flags, int mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return LastError();
  return UniqueFd(fd);
}

boost::system::error_code SyncDirectory(const std::filesystem::path& dir) {
  auto fd = OpenFile(dir, O_RDONLY | O_DIRECTORY);
  if (!fd) return fd.error();
  if (::fsync(fd->get()) != 0) return LastError();
  return {};
}

namespace {

boost::system::error_code WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastError();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

boost::system::error_code WriteFileAtomically(const std::filesystem::path& path, std::string_view contents,
                                              int mode) {
  std::random_device rd;
  auto tmp = path;
  tmp += ".tmp-" + std::to_string(rd());
  auto fd = OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
  if (!fd) return fd.error();
  // The umask may have narrowed `mode`; a secret file must end up exactly as asked.
  if (::fchmod(fd->get(), static_cast<mode_t>(mode)) != 0 || WriteAll(fd->get(), contents) ||
      ::fsync(fd->get()) != 0) {
    auto ec = LastError();
    ::unlink(tmp.c_str());
    return ec;
  }
  fd->Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto ec = LastError();
    ::unlink(tmp.c_str());
    return ec;
  }
  return SyncDirectory(path.parent_path().empty() ? "." : path.parent_path());
}

boost::system::result<std::string> ReadSmallFile(const std::filesystem::path& path, std::size_t limit) {
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd) return fd.error();
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastError();
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > limit) return boost::system::error_code(EFBIG, boost::system::system_category());
  }
  return out;
}

}  // namespace plyr
