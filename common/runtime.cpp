#include "common/runtime.h"

#include <system_error>

#ifdef BOOST_ASIO_HAS_IO_URING
#include <liburing.h>
#endif

namespace plyr {

const char* IoBackendName() {
#if defined(BOOST_ASIO_HAS_IO_URING) && defined(BOOST_ASIO_DISABLE_EPOLL)
  return "io_uring";
#else
  return "epoll";
#endif
}

StatusOr<IoUringProbe> ProbeIoUring() {
  IoUringProbe probe;
#ifdef BOOST_ASIO_HAS_IO_URING
  io_uring ring{};
  // The shim's io_uring_queue_init, as Asio calls it: liburing keeps the flags the kernel took.
  int rc = io_uring_queue_init(8, &ring, 0);
  if (rc < 0) return Status(StatusCode::kUnavailable, std::system_category().message(-rc));
  probe.cooperative_task_run = (ring.flags & IORING_SETUP_COOP_TASKRUN) != 0;
  io_uring_queue_exit(&ring);
#endif
  return probe;
}

Runtime::Runtime(RuntimeOptions options)
    : model_(options.model),
      threads_(options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency())) {
  const unsigned context_count = model_ == ThreadModel::kPerCore ? threads_ : 1;
  for (unsigned i = 0; i < context_count; ++i) {
    // The concurrency hint 1 lets Asio drop its internal locking for single-threaded contexts.
    const int hint = model_ == ThreadModel::kPerCore ? 1 : static_cast<int>(threads_);
    contexts_.push_back(std::make_unique<asio::io_context>(hint));
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
  }
}

Runtime::~Runtime() {
  Stop();
  guards_.clear();
}

void Runtime::Run() {
  std::vector<std::thread> threads;
  threads.reserve(threads_);
  for (unsigned i = 1; i < threads_; ++i) {
    asio::io_context& ctx = model_ == ThreadModel::kPerCore ? *contexts_[i] : *contexts_[0];
    threads.emplace_back([&ctx] { ctx.run(); });
  }
  contexts_[0]->run();
  for (auto& t : threads) t.join();
}

void Runtime::Stop() {
  for (auto& ctx : contexts_) ctx->stop();
}

}  // namespace plyr
