// Shim over liburing.h for Boost.Asio 1.81's io_uring backend (included first via the plyr_asio
// target's include path).
//
// Asio 1.81 takes a submission entry with io_uring_get_sqe() and never clears its user_data.
// liburing 2.3's io_uring_prep_cancel() does not set it either, so the cancel request Asio queues
// for socket.cancel() or a close() with an operation pending carries whatever pointer that ring
// slot held before: an operation of some other socket. Asio then completes that other operation
// early with the cancel's result, and its real completion is later credited to the next one:
// connections stall or lose bytes (a standalone reproduction: 200 clients x 20 000 frames and one
// unrelated read cancelled every 20 ms stalls after about 107 000 frames; with this shim all 4
// million arrive, as with epoll). Newer Asio clears user_data in get_sqe(); this does the same.
//
// Asio 1.81 also creates every ring with no setup flags. Then each completion that arrives while
// the ring's thread is running (a request landing on a socket, a socket becoming writable) is
// pushed to that thread with an inter-processor interrupt, paid by whoever woke it: on the
// streaming benchmark the load generator spent 20 % of its CPU in those wakeups against plyr-core
// and 5 % against nginx's epoll. IORING_SETUP_COOP_TASKRUN (Linux 5.19) drops the interrupt: a
// running thread picks the completions up at its next system call, a sleeping one is still woken.
// IORING_SETUP_TASKRUN_FLAG makes liburing's peek enter the kernel when such work is pending, so
// Asio's non-blocking polls still see it. On older kernels the ring is created as before.
#pragma once
// A system header like the one it wraps (and #include_next, a GCC extension, warns otherwise).
#pragma GCC system_header

#include_next <liburing.h>

static inline struct io_uring_sqe* plyr_io_uring_get_cleared_sqe(struct io_uring* ring) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
  // A completion with user_data 0 is ignored by Asio: right for its cancel requests, and every
  // other operation sets its own user_data after this.
  if (sqe) io_uring_sqe_set_data(sqe, 0);
  return sqe;
}

#define io_uring_get_sqe plyr_io_uring_get_cleared_sqe

static inline int plyr_io_uring_queue_init_cooperative(unsigned entries, struct io_uring* ring, unsigned flags) {
  int rc = io_uring_queue_init(entries, ring, flags | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
  if (rc == -EINVAL) rc = io_uring_queue_init(entries, ring, flags);  // a kernel before 5.19
  return rc;
}

#define io_uring_queue_init plyr_io_uring_queue_init_cooperative
