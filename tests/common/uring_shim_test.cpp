// The liburing shim (common/uring_shim/liburing.h) is what Asio sees: a reused submission entry
// starts with user_data 0, so Asio's cancel requests can never complete another operation, and
// rings are created with cooperative task running where the kernel has it.
#include <liburing.h>
#include <sys/utsname.h>

#include <cstdio>

#include <gtest/gtest.h>

#include "common/runtime.h"

namespace {

// Submits a NOP tagged `tag` and waits for its completion, which must carry the same tag.
void ExpectNopRoundTrip(io_uring& ring, void* tag) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data(sqe, tag);
  ASSERT_EQ(io_uring_submit(&ring), 1);
  io_uring_cqe* cqe = nullptr;
  ASSERT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
  EXPECT_EQ(io_uring_cqe_get_data(cqe), tag);
  io_uring_cqe_seen(&ring, cqe);
}

TEST(UringShim, ReusedSubmissionEntriesStartWithoutUserData) {
  io_uring ring{};
  ASSERT_EQ(io_uring_queue_init(1, &ring, 0), 0);
  // Use the ring's only slot for an operation with user_data set, as Asio does...
  ASSERT_NO_FATAL_FAILURE(ExpectNopRoundTrip(ring, reinterpret_cast<void*>(0xdead)));
  // ...then take the same slot again, as Asio does for a cancel request it does not tag.
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_cancel(sqe, reinterpret_cast<void*>(0xbeef), 0);
  EXPECT_EQ(sqe->user_data, 0u);  // the stale 0xdead without the shim
  io_uring_queue_exit(&ring);
}

bool KernelAtLeast(int major, int minor) {
  utsname u{};
  int have_major = 0, have_minor = 0;
  if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &have_major, &have_minor) != 2) return false;
  return have_major > major || (have_major == major && have_minor >= minor);
}

TEST(UringShim, RingsRunCompletionsCooperativelyWhereTheKernelCan) {
  io_uring ring{};
  ASSERT_EQ(io_uring_queue_init(4, &ring, 0), 0);
  const unsigned flags = ring.flags;
  // A ring made this way still delivers completions: a NOP goes round through peek and wait.
  ASSERT_NO_FATAL_FAILURE(ExpectNopRoundTrip(ring, reinterpret_cast<void*>(0x1234)));
  io_uring_queue_exit(&ring);

  if (!KernelAtLeast(5, 19)) GTEST_SKIP() << "IORING_SETUP_COOP_TASKRUN needs Linux 5.19";
  EXPECT_NE(flags & IORING_SETUP_COOP_TASKRUN, 0u);
  EXPECT_NE(flags & IORING_SETUP_TASKRUN_FLAG, 0u);
  auto probe = plyr::ProbeIoUring();
  ASSERT_TRUE(probe);
  EXPECT_TRUE(probe->cooperative_task_run);
}

}  // namespace
