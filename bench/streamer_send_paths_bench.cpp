// File slice -> TCP socket: the ways io_uring offers, measured against sendfile(2) on loopback.
//
// The streamer sends audio with sendfile(2) and waits for writability through io_uring
// (common/http_server.cpp). The issue asked for io_uring's own paths to be measured rather than
// assumed; Asio 1.81 has none of them, so this drives liburing directly, one path per benchmark:
//
//   BM_Sendfile (the anchor)    sendfile(2): the page cache straight into the socket
//   BM_ReadSend                 pread(2) into a buffer, then send(2): two copies
//   BM_Splice                   splice(2) file -> pipe -> socket, through a pipe of 512 KiB
//   BM_UringReadSend            IORING_OP_READ linked to IORING_OP_SEND (what Asio does, in one submit)
//   BM_UringReadSendFixedFiles  the same with the file and the socket in the ring's registered file table
//   BM_UringReadFixedSendZc     READ_FIXED into a registered buffer, then SEND_ZC from it (zero copy
//                               out of user space; the buffer is reused only after its notification)
//   BM_UringSplice              SPLICE file -> pipe linked to SPLICE pipe -> socket
//
// Every path sends from the same file, written once per process.
// Each iteration sends one slice (64 KiB or 1 MiB, at a random unaligned offset of a 64 MiB file
// in the page cache) over a loopback TCP connection whose far end a reader thread drains. The
// sender runs on CPU 0 and the reader on CPU 1 when there are two. Figures: bytes/s (real time),
// and `cpu_us_per_MiB`: CPU of the whole process except the reader thread (so io_uring's worker
// threads count) per MiB sent. The ratio that matters is each path's against BM_Sendfile of the
// same size in the same run. One connection and one buffer: a server with many connections has
// many buffers, which this does not model (bench/RESULTS.md has the reading). This VM's runs vary
// by 10-50 %, so run it with repetitions, interleaved:
//
//   build/release/bench/streamer_send_paths_bench --benchmark_repetitions=5
//       --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ctime>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

constexpr std::size_t kFileBytes = 64u << 20;
constexpr std::size_t kChunk = 256u << 10;  // user-space buffer and pipe size

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  return seconds(ru.ru_utime) + seconds(ru.ru_stime);
}

void PinTo(int cpu) {
  if (std::thread::hardware_concurrency() < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// The file every path sends from, written once: a fresh file per benchmark lands in the page cache
// in differently sized folios, and that alone moved sendfile's figures by 2x between runs.
struct SharedFile {
  int fd = -1;
  std::string error;
  SharedFile() {
    std::string path = (std::filesystem::temp_directory_path() / "plyr-send-bench-XXXXXX").string();
    fd = mkstemp(path.data());
    if (fd < 0) {
      error = std::string("mkstemp: ") + std::strerror(errno);
      return;
    }
    unlink(path.c_str());
    std::vector<char> block(1 << 20);
    std::mt19937_64 rng(42);
    for (std::size_t done = 0; done < kFileBytes && error.empty(); done += block.size()) {
      for (auto& c : block) c = static_cast<char>(rng());
      if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) error = "write failed";
    }
    // Read it once so every path starts from a warm page cache.
    for (std::size_t done = 0; done < kFileBytes && error.empty(); done += block.size()) {
      if (pread(fd, block.data(), block.size(), static_cast<off_t>(done)) <= 0) error = "pread failed";
    }
  }
};

const SharedFile& TheFile() {
  static SharedFile file;
  return file;
}

// The shared file, a loopback connection and a reader thread draining its far end.
class Rig {
 public:
  Rig() {
    if (!TheFile().error.empty()) {
      error_ = TheFile().error;
      return;
    }
    file_ = TheFile().fd;

    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listener, 1) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      { Fail("listen"); return; }
    }
    socket_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (socket_ < 0 || connect(socket_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) { Fail("connect"); return; }
    peer_ = accept(listener, nullptr, nullptr);
    close(listener);
    if (peer_ < 0) { Fail("accept"); return; }
    int one = 1;
    setsockopt(socket_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    reader_ = std::thread([this] { Drain(); });
  }

  ~Rig() {
    if (socket_ >= 0) shutdown(socket_, SHUT_WR);  // the reader sees end of stream and stops
    if (reader_.joinable()) reader_.join();
    for (int fd : {socket_, peer_}) {
      if (fd >= 0) close(fd);
    }
  }

  const std::string& error() const { return error_; }
  int file() const { return file_; }
  int socket() const { return socket_; }
  double reader_cpu_seconds() const { return reader_cpu_.load(); }

  // A random unaligned offset with room for `length` bytes.
  off_t NextOffset(std::size_t length) {
    return static_cast<off_t>(rng_() % (kFileBytes - length));
  }

 private:
  void Fail(const char* what) { error_ = std::string(what) + ": " + std::strerror(errno); }

  void Drain() {
    PinTo(1);
    std::vector<char> buffer(1 << 20);
    for (;;) {
      ssize_t n = recv(peer_, buffer.data(), buffer.size(), 0);
      reader_cpu_.store(ThreadCpuSeconds());
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      break;
    }
  }

  int file_ = -1, socket_ = -1, peer_ = -1;
  std::thread reader_;
  std::atomic<double> reader_cpu_{0};
  std::mt19937_64 rng_{7};
  std::string error_;
};

// The per-iteration send of one path: returns false (with errno set) on failure.
using SendFn = bool (*)(Rig&, off_t offset, std::size_t length, void* state);

// Runs `send` for every iteration and reports throughput and CPU per MiB.
void Run(benchmark::State& state, SendFn send, void* send_state = nullptr, Rig* shared = nullptr) {
  PinTo(0);
  std::optional<Rig> local_rig;
  if (!shared) local_rig.emplace();
  Rig& rig = shared ? *shared : *local_rig;
  if (!rig.error().empty()) {
    state.SkipWithError(rig.error().c_str());
    return;
  }
  const auto length = static_cast<std::size_t>(state.range(0));
  const double cpu_before = ProcessCpuSeconds() - rig.reader_cpu_seconds();
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    if (!send(rig, rig.NextOffset(length), length, send_state)) {
      state.SkipWithError((std::string("send failed: ") + std::strerror(errno)).c_str());
      return;
    }
    bytes += length;
  }
  const double cpu = ProcessCpuSeconds() - rig.reader_cpu_seconds() - cpu_before;
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["cpu_us_per_MiB"] = bytes ? cpu * 1e6 / (static_cast<double>(bytes) / (1 << 20)) : 0;
}

// --- plain system calls -------------------------------------------------------------------------

bool SendfileSlice(Rig& rig, off_t offset, std::size_t length, void*) {
  while (length > 0) {
    ssize_t n = sendfile(rig.socket(), rig.file(), &offset, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    length -= static_cast<std::size_t>(n);
  }
  return true;
}

bool ReadSendSlice(Rig& rig, off_t offset, std::size_t length, void* buffer) {
  char* chunk = static_cast<char*>(buffer);
  while (length > 0) {
    ssize_t got = pread(rig.file(), chunk, std::min(length, kChunk), offset);
    if (got <= 0) return false;
    for (ssize_t sent = 0; sent < got;) {
      ssize_t n = send(rig.socket(), chunk + sent, static_cast<std::size_t>(got - sent), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      sent += n;
    }
    offset += got;
    length -= static_cast<std::size_t>(got);
  }
  return true;
}

// splice(2) through a pipe of 512 KiB: sendfile(2) itself splices through a pipe of 16 pages.
struct Pipe {
  int fds[2] = {-1, -1};
  bool ok = false;
  Pipe() { ok = pipe2(fds, O_CLOEXEC) == 0 && fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(2 * kChunk)) > 0; }
  ~Pipe() {
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
  }
};

bool SpliceSlice(Rig& rig, off_t offset, std::size_t length, void* state) {
  Pipe& pipe = *static_cast<Pipe*>(state);
  while (length > 0) {
    ssize_t got = splice(rig.file(), &offset, pipe.fds[1], nullptr, std::min(length, kChunk), SPLICE_F_MOVE);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    length -= static_cast<std::size_t>(got);
    for (ssize_t sent = 0; sent < got;) {
      ssize_t n = splice(pipe.fds[0], nullptr, rig.socket(), nullptr, static_cast<std::size_t>(got - sent),
                         SPLICE_F_MOVE | SPLICE_F_MORE);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      sent += n;
    }
  }
  return true;
}

// --- io_uring -------------------------------------------------------------------------------------

struct Completion {
  std::uint64_t tag = 0;  // the submission's user_data
  int res = 0;
  unsigned flags = 0;
};

// A ring, a registered buffer and a pipe, shared by the io_uring paths.
struct Uring {
  io_uring ring{};
  bool ok = false;
  std::vector<char> buffer = std::vector<char>(kChunk);
  int pipe_fds[2] = {-1, -1};
  std::string error;

  Uring() {
    int rc = io_uring_queue_init(64, &ring, 0);
    if (rc < 0) {
      error = std::string("io_uring_queue_init: ") + std::strerror(-rc);
      return;
    }
    iovec iov{buffer.data(), buffer.size()};
    rc = io_uring_register_buffers(&ring, &iov, 1);
    if (rc < 0) {
      error = std::string("io_uring_register_buffers: ") + std::strerror(-rc);
      return;
    }
    // A pipe slot holds one page: an unaligned 256 KiB slice spans 65 of them, so give it room.
    if (pipe2(pipe_fds, O_CLOEXEC) != 0 || fcntl(pipe_fds[1], F_SETPIPE_SZ, static_cast<int>(2 * kChunk)) < 0) {
      error = std::string("pipe: ") + std::strerror(errno);
      return;
    }
    ok = true;
  }
  ~Uring() {
    for (int fd : pipe_fds) {
      if (fd >= 0) close(fd);
    }
    if (ring.ring_fd >= 0) io_uring_queue_exit(&ring);
  }

  // Submits what is queued and reaps `count` completions, in order of arrival.
  bool Reap(unsigned count, std::vector<Completion>& out) {
    out.clear();
    if (io_uring_submit_and_wait(&ring, count) < 0) return false;
    while (out.size() < count) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring, &cqe) != 0) return false;
      out.push_back({cqe->user_data, cqe->res, cqe->flags});
      io_uring_cqe_seen(&ring, cqe);
    }
    return true;
  }
};

Uring& SharedUring() {
  static Uring uring;
  return uring;
}

// Sends buffer[from, got) with IORING_OP_SEND until all of it is out.
bool UringSendRest(Uring& u, int socket, unsigned sqe_flags, std::size_t from, std::size_t got,
                   std::vector<Completion>& done) {
  for (std::size_t sent = from; sent < got;) {
    io_uring_sqe* sqe = io_uring_get_sqe(&u.ring);
    io_uring_prep_send(sqe, socket, u.buffer.data() + sent, got - sent, MSG_NOSIGNAL);
    sqe->user_data = 2;
    sqe->flags |= sqe_flags;
    if (!u.Reap(1, done) || done[0].res <= 0) return false;
    sent += static_cast<std::size_t>(done[0].res);
  }
  return true;
}

// READ linked to SEND, one submission for both. `file` and `socket` are descriptors, or indexes
// into the ring's registered file table when `sqe_flags` holds IOSQE_FIXED_FILE.
bool UringReadSend(Uring& u, int file, int socket, unsigned sqe_flags, off_t offset, std::size_t length) {
  std::vector<Completion> done;
  while (length > 0) {
    const std::size_t want = std::min(length, kChunk);
    io_uring_sqe* read = io_uring_get_sqe(&u.ring);
    io_uring_prep_read(read, file, u.buffer.data(), static_cast<unsigned>(want), static_cast<std::uint64_t>(offset));
    read->user_data = 1;
    read->flags |= IOSQE_IO_LINK | sqe_flags;
    io_uring_sqe* send = io_uring_get_sqe(&u.ring);
    io_uring_prep_send(send, socket, u.buffer.data(), want, MSG_NOSIGNAL | MSG_WAITALL);
    send->user_data = 2;
    send->flags |= sqe_flags;
    if (!u.Reap(2, done)) return false;
    int got = 0, sent = 0;
    for (const auto& c : done) (c.tag == 1 ? got : sent) = c.res;
    if (got <= 0) return false;
    // A short read cancels the linked send (-ECANCELED); a short send leaves the rest.
    const auto already = static_cast<std::size_t>(std::max(sent, 0));
    if (sent < got && !UringSendRest(u, socket, sqe_flags, already, static_cast<std::size_t>(got), done)) return false;
    offset += got;
    length -= static_cast<std::size_t>(got);
  }
  return true;
}

bool UringReadSendSlice(Rig& rig, off_t offset, std::size_t length, void* state) {
  return UringReadSend(*static_cast<Uring*>(state), rig.file(), rig.socket(), 0, offset, length);
}

// BM_UringReadSendFixedFiles: the file is registered as index 0 and the socket as index 1.
bool UringReadSendFixedFilesSlice(Rig&, off_t offset, std::size_t length, void* state) {
  return UringReadSend(*static_cast<Uring*>(state), 0, 1, IOSQE_FIXED_FILE, offset, length);
}

bool UringReadFixedSendZcSlice(Rig& rig, off_t offset, std::size_t length, void* state) {
  Uring& u = *static_cast<Uring*>(state);
  std::vector<Completion> done;
  while (length > 0) {
    const std::size_t want = std::min(length, kChunk);
    io_uring_sqe* read = io_uring_get_sqe(&u.ring);
    io_uring_prep_read_fixed(read, rig.file(), u.buffer.data(), static_cast<unsigned>(want),
                             static_cast<std::uint64_t>(offset), 0);
    read->user_data = 1;
    if (!u.Reap(1, done) || done[0].res <= 0) return false;
    const auto got = static_cast<std::size_t>(done[0].res);
    for (std::size_t sent = 0; sent < got;) {
      io_uring_sqe* send = io_uring_get_sqe(&u.ring);
      io_uring_prep_send_zc_fixed(send, rig.socket(), u.buffer.data() + sent, got - sent, MSG_NOSIGNAL | MSG_WAITALL,
                                  0, 0);
      send->user_data = 2;
      // The result, then (when the kernel took references to the buffer) a notification that it
      // may be reused: wait for both before the next read overwrites it.
      if (!u.Reap(1, done)) return false;
      const int res = done[0].res;
      const bool notification_follows = (done[0].flags & IORING_CQE_F_MORE) != 0;
      if (notification_follows && (!u.Reap(1, done) || !(done[0].flags & IORING_CQE_F_NOTIF))) return false;
      if (res <= 0) return false;
      sent += static_cast<std::size_t>(res);
    }
    offset += static_cast<off_t>(got);
    length -= got;
  }
  return true;
}

bool UringSpliceSlice(Rig& rig, off_t offset, std::size_t length, void* state) {
  Uring& u = *static_cast<Uring*>(state);
  std::vector<Completion> done;
  while (length > 0) {
    const std::size_t want = std::min(length, kChunk);
    io_uring_sqe* in = io_uring_get_sqe(&u.ring);
    io_uring_prep_splice(in, rig.file(), offset, u.pipe_fds[1], -1, static_cast<unsigned>(want), 0);
    in->user_data = 1;
    in->flags |= IOSQE_IO_LINK;
    io_uring_sqe* out = io_uring_get_sqe(&u.ring);
    io_uring_prep_splice(out, u.pipe_fds[0], -1, rig.socket(), -1, static_cast<unsigned>(want), 0);
    out->user_data = 2;
    if (!u.Reap(2, done)) return false;
    int got = 0, sent = 0;
    for (const auto& c : done) (c.tag == 1 ? got : sent) = c.res;
    if (got <= 0) return false;
    if (sent < 0 && sent != -ECANCELED) return false;
    sent = std::max(sent, 0);  // a short first splice cancels the linked second one
    // Whatever the pipe still holds (a short second splice) goes out before the next chunk.
    while (sent < got) {
      io_uring_sqe* rest = io_uring_get_sqe(&u.ring);
      io_uring_prep_splice(rest, u.pipe_fds[0], -1, rig.socket(), -1, static_cast<unsigned>(got - sent), 0);
      rest->user_data = 2;
      if (!u.Reap(1, done) || done[0].res <= 0) return false;
      sent += done[0].res;
    }
    offset += got;
    length -= static_cast<std::size_t>(got);
  }
  return true;
}

void BM_Sendfile(benchmark::State& state) { Run(state, SendfileSlice); }

void BM_ReadSend(benchmark::State& state) {
  std::vector<char> buffer(kChunk);
  Run(state, ReadSendSlice, buffer.data());
}

void RunUring(benchmark::State& state, SendFn send) {
  Uring& u = SharedUring();
  if (!u.ok) {
    state.SkipWithError(u.error.c_str());
    return;
  }
  Run(state, send, &u);
}

void BM_Splice(benchmark::State& state) {
  Pipe pipe;
  if (!pipe.ok) {
    state.SkipWithError("pipe");
    return;
  }
  Run(state, SpliceSlice, &pipe);
}

void BM_UringReadSend(benchmark::State& state) { RunUring(state, UringReadSendSlice); }
void BM_UringReadSendFixedFiles(benchmark::State& state) {
  Uring& u = SharedUring();
  if (!u.ok) {
    state.SkipWithError(u.error.c_str());
    return;
  }
  PinTo(0);
  Rig rig;
  const int fds[2] = {rig.file(), rig.socket()};
  if (!rig.error().empty() || io_uring_register_files(&u.ring, fds, 2) != 0) {
    state.SkipWithError(rig.error().empty() ? "io_uring_register_files failed" : rig.error().c_str());
    return;
  }
  Run(state, UringReadSendFixedFilesSlice, &u, &rig);
  io_uring_unregister_files(&u.ring);
}

void BM_UringReadFixedSendZc(benchmark::State& state) { RunUring(state, UringReadFixedSendZcSlice); }
void BM_UringSplice(benchmark::State& state) { RunUring(state, UringSpliceSlice); }

#define PLYR_SEND_PATH(name) BENCHMARK(name)->Arg(64 << 10)->Arg(1 << 20)->UseRealTime()->MinTime(0.5)
PLYR_SEND_PATH(BM_Sendfile);
PLYR_SEND_PATH(BM_ReadSend);
PLYR_SEND_PATH(BM_Splice);
PLYR_SEND_PATH(BM_UringReadSend);
PLYR_SEND_PATH(BM_UringReadSendFixedFiles);
PLYR_SEND_PATH(BM_UringReadFixedSendZc);
PLYR_SEND_PATH(BM_UringSplice);

}  // namespace

BENCHMARK_MAIN();
