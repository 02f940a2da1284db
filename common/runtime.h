// Runtime: the I/O threads every service runs on.
//
// Two layouts, chosen at start-up (bench/RESULTS.md records which is faster and why the default
// is what it is):
//   kPerCore  - one io_context per thread, each run by exactly one thread. Listeners open one
//               SO_REUSEPORT acceptor per context and the kernel spreads connections. A
//               connection never leaves its thread, so sessions need no strand.
//   kShared   - one io_context run by every thread; sessions run on strands.
//
// Thread rule: construct, then Run() from the main thread; Stop() and Post() are thread-safe.
// On a build with PLYR_IO_URING, every I/O object runs on Asio's io_uring backend;
// ProbeIoUring() tells up front whether the kernel lets us create a ring at all.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "common/net.h"
#include "common/status.h"

namespace plyr {

enum class ThreadModel { kPerCore, kShared };

struct RuntimeOptions {
  unsigned threads = 0;  // 0: one per CPU core
  ThreadModel model = ThreadModel::kPerCore;
};

// "io_uring" or "epoll": the backend this binary's Asio was built for.
const char* IoBackendName();

// What the probe learnt about the rings this process creates.
struct IoUringProbe {
  // True when rings run completions cooperatively (IORING_SETUP_COOP_TASKRUN, Linux 5.19+; see
  // common/uring_shim/liburing.h): no inter-processor interrupt per completion.
  bool cooperative_task_run = false;
};

// Creates and tears down a small io_uring instance, the way Asio creates its rings. Fails with
// the kernel's error (for example EPERM under a seccomp profile or kernel.io_uring_disabled,
// ENOSYS on old kernels) so start-up can say so plainly instead of failing deep inside Asio.
// Always succeeds on an epoll build. Unavailable, with the kernel's reason, otherwise.
StatusOr<IoUringProbe> ProbeIoUring();

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  ThreadModel model() const { return model_; }
  unsigned thread_count() const { return threads_; }

  // The contexts listeners accept on: one per thread (kPerCore) or the single shared one.
  const std::vector<std::unique_ptr<asio::io_context>>& contexts() const { return contexts_; }
  // Context for process-wide work (signals, timers, background jobs): contexts()[0].
  asio::io_context& main_context() { return *contexts_.front(); }

  // Runs every context on its threads; returns when all have stopped.
  void Run();
  // Stops every context (pending handlers are abandoned). Thread-safe.
  void Stop();

 private:
  ThreadModel model_;
  unsigned threads_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  // Keeps contexts running while they have no pending work (before the first accept).
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
};

}  // namespace plyr
