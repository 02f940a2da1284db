// The liburing shim (common/uring_shim/liburing.h) is what Asio sees: a reused submission entry
// starts with user_data 0, so Asio's cancel requests can never complete another operation.
#include <liburing.h>

#include <gtest/gtest.h>

namespace {

TEST(UringShim, ReusedSubmissionEntriesStartWithoutUserData) {
  io_uring ring{};
  ASSERT_EQ(io_uring_queue_init(1, &ring, 0), 0);
  // Use the ring's only slot for an operation with user_data set, as Asio does...
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data(sqe, reinterpret_cast<void*>(0xdead));
  ASSERT_EQ(io_uring_submit(&ring), 1);
  io_uring_cqe* cqe = nullptr;
  ASSERT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
  EXPECT_EQ(io_uring_cqe_get_data(cqe), reinterpret_cast<void*>(0xdead));
  io_uring_cqe_seen(&ring, cqe);
  // ...then take the same slot again, as Asio does for a cancel request it does not tag.
  sqe = io_uring_get_sqe(&ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_cancel(sqe, reinterpret_cast<void*>(0xbeef), 0);
  EXPECT_EQ(sqe->user_data, 0u);  // the stale 0xdead without the shim
  io_uring_queue_exit(&ring);
}

}  // namespace
