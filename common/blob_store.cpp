#include "common/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#if defined(BOOST_ASIO_HAS_FILE)
#include <boost/asio/stream_file.hpp>
#endif
#include <fmt/format.h>
#include <openssl/evp.h>

namespace plyr {

namespace fs = std::filesystem;

namespace {

struct EvpDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

std::string TempName() {
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("upload-{:016x}-{}", rng(), counter.fetch_add(1));
}

// The upload's temporary file. On the io_uring build, writes go through the ring; an epoll build
// (-DPLYR_IO_URING=OFF) has no asynchronous files and writes with plain write(2), which for a
// regular file is a copy into the page cache and returns without waiting for the disk.
#if defined(BOOST_ASIO_HAS_FILE)
class TempFile {
 public:
  explicit TempFile(const asio::any_io_executor& executor) : file_(executor) {}
  boost::system::error_code Create(const fs::path& path) {
    boost::system::error_code ec;
    file_.open(path.string(), asio::file_base::write_only | asio::file_base::create | asio::file_base::exclusive, ec);
    return ec;
  }
  asio::awaitable<std::pair<boost::system::error_code, std::size_t>> Write(std::span<const char> bytes) {
    auto [ec, n] = co_await asio::async_write(file_, asio::buffer(bytes.data(), bytes.size()),
                                              asio::as_tuple(asio::use_awaitable));
    co_return std::pair{ec, n};
  }
  boost::system::error_code SyncAndClose() {
    boost::system::error_code ec;
    file_.sync_all(ec);
    if (!ec) file_.close(ec);
    return ec;
  }
  void Close() {
    boost::system::error_code ignored;
    file_.close(ignored);
  }

 private:
  asio::stream_file file_;
};
#else
class TempFile {
 public:
  explicit TempFile(const asio::any_io_executor&) {}
  boost::system::error_code Create(const fs::path& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return LastError();
    fd_ = UniqueFd(fd);
    return {};
  }
  asio::awaitable<std::pair<boost::system::error_code, std::size_t>> Write(std::span<const char> bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) co_return std::pair{LastError(), done};
      done += static_cast<std::size_t>(n);
    }
    co_return std::pair{boost::system::error_code{}, done};
  }
  boost::system::error_code SyncAndClose() {
    if (::fsync(fd_.get()) != 0) return LastError();
    if (::close(fd_.Release()) != 0) return LastError();
    return {};
  }
  void Close() { fd_.Reset(); }

 private:
  UniqueFd fd_;
};
#endif

}  // namespace

struct BlobStore::Writer::State {
  fs::path root;
  fs::path temp_path;
  TempFile file;
  std::unique_ptr<EVP_MD_CTX, EvpDeleter> sha{EVP_MD_CTX_new()};
  bool committed = false;

  State(const asio::any_io_executor& ex, fs::path r, fs::path t)
      : root(std::move(r)), temp_path(std::move(t)), file(ex) {}
};

const fs::path& BlobStore::Writer::temp_path() const { return state_->temp_path; }

bool BlobStore::IsValidId(std::string_view id) {
  if (id.size() != 16) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

namespace {

Status InvalidId() { return Status(StatusCode::kInvalidArgument, "a blob id is 16 lowercase hex characters"); }

}  // namespace

StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(const fs::path& root) {
  std::error_code ec;
  fs::create_directories(root / ".tmp", ec);
  if (ec) return FileError("cannot create " + (root / ".tmp").string(), ec.value());
  // Anything in .tmp is an upload that never committed (a crash or kill): it has no id yet.
  for (const auto& entry : fs::directory_iterator(root / ".tmp", ec)) fs::remove(entry.path(), ec);
  return std::unique_ptr<BlobStore>(new BlobStore(root));
}

fs::path BlobStore::PathFor(std::string_view id) const {
  return root_ / std::string(id.substr(0, 2)) / std::string(id);
}

bool BlobStore::Contains(std::string_view id) const {
  struct stat st{};
  return IsValidId(id) && ::stat(PathFor(id).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Status BlobStore::Remove(std::string_view id) {
  if (!IsValidId(id)) return InvalidId();
  {
    std::lock_guard lock(open_cache_mutex_);
    open_cache_.erase(std::string(id));
  }
  const fs::path path = PathFor(id);
  if (::unlink(path.c_str()) != 0) return FileError("cannot remove blob " + std::string(id), errno);
  return SyncDirectory(path.parent_path());
}

StatusOr<BlobStore::OpenBlob> BlobStore::OpenForRead(std::string_view id) const {
  if (!IsValidId(id)) return InvalidId();
  const int raw_fd = ::open(PathFor(id).c_str(), O_RDONLY | O_CLOEXEC);
  if (raw_fd < 0) return FileError("blob " + std::string(id), errno);
  UniqueFd fd(raw_fd);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return FileError("blob " + std::string(id), errno);
  OpenBlob blob;
  blob.fd = std::move(fd);
  blob.size = static_cast<std::uint64_t>(st.st_size);
  blob.mtime_seconds = st.st_mtim.tv_sec;
  return blob;
}

StatusOr<std::shared_ptr<const BlobStore::OpenBlob>> BlobStore::OpenShared(std::string_view id) {
  if (!IsValidId(id)) return InvalidId();
  const std::string key(id);
  {
    std::lock_guard lock(open_cache_mutex_);
    if (auto it = open_cache_.find(key); it != open_cache_.end()) return it->second;
  }
  auto blob = OpenForRead(id);
  if (!blob.ok()) return blob.status();
  auto shared = std::make_shared<const OpenBlob>(std::move(*blob));
  std::lock_guard lock(open_cache_mutex_);
  if (open_cache_.size() >= kOpenCacheEntries) open_cache_.clear();
  return open_cache_.try_emplace(key, shared).first->second;
}

StatusOr<std::unique_ptr<BlobStore::Writer>> BlobStore::Begin(const asio::any_io_executor& executor) {
  auto state = std::make_unique<Writer::State>(executor, root_, root_ / ".tmp" / TempName());
  if (auto ec = state->file.Create(state->temp_path)) return FileError("cannot create an upload file", ec);
  if (!state->sha || EVP_DigestInit_ex(state->sha.get(), EVP_sha256(), nullptr) != 1) {
    return Status(StatusCode::kInternal, "cannot start a SHA-256 digest");
  }
  return std::unique_ptr<Writer>(new Writer(std::move(state)));
}

BlobStore::Writer::Writer(std::unique_ptr<State> state) : state_(std::move(state)) {}

BlobStore::Writer::~Writer() {
  if (state_ && !state_->committed) {
    state_->file.Close();
    ::unlink(state_->temp_path.c_str());
  }
}

asio::awaitable<Status> BlobStore::Writer::Write(std::span<const char> bytes) {
  if (state_->committed) co_return Status(StatusCode::kFailedPrecondition, "the blob is committed already");
  EVP_DigestUpdate(state_->sha.get(), bytes.data(), bytes.size());
  auto [ec, n] = co_await state_->file.Write(bytes);
  size_ += n;
  if (ec) co_return FileError("cannot write the upload", ec);
  co_return OkStatus();
}

StatusOr<BlobInfo> BlobStore::Writer::Commit() {
  if (state_->committed) return Status(StatusCode::kFailedPrecondition, "the blob is committed already");
  if (auto ec = state_->file.SyncAndClose()) return FileError("cannot write the upload to disk", ec);

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_DigestFinal_ex(state_->sha.get(), digest, &digest_len);
  std::string id;
  for (int i = 0; i < 8; ++i) id += fmt::format("{:02x}", digest[i]);

  fs::path dir = state_->root / id.substr(0, 2);
  std::error_code fec;
  const bool new_shard = fs::create_directories(dir, fec);
  if (fec) return FileError("cannot create " + dir.string(), fec.value());
  // A shard directory created just now is itself an entry of the root: make it durable too,
  // or a crash could keep the blob's rename but lose the directory that holds it.
  if (new_shard) {
    if (Status synced = SyncDirectory(state_->root); !synced.ok()) return synced;
  }
  fs::path final_path = dir / id;
  // Same bytes, same name: renaming over an existing blob replaces it with identical content.
  if (::rename(state_->temp_path.c_str(), final_path.c_str()) != 0) {
    return FileError("cannot move the upload into place", errno);
  }
  state_->committed = true;
  if (Status synced = SyncDirectory(dir); !synced.ok()) return synced;
  return BlobInfo{id, size_};
}

}  // namespace plyr
