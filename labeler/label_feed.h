// LabelFeed: the newest labels of the log as ready-to-send subscribeLabels frames, and the wake-up
// of subscribers waiting for more.
//
// The log's writer publishes each durable commit here; every live subscriber reads the same
// shared frame bytes, so a label costs one encoding however many subscribers there are, and a
// subscriber holds no queue of its own (it holds a position). A subscriber further behind than
// the feed's window reads the log instead (LabelStore::ReadAfter). Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "labeler/label.h"

namespace plyr::labeler {

struct Frame {
  std::int64_t seq = 0;
  std::shared_ptr<const std::string> bytes;  // one complete binary WebSocket frame, header included
};

class LabelFeed {
 public:
  // Keeps up to `capacity` frames; `head` is the log's newest seq at start.
  LabelFeed(std::size_t capacity, std::int64_t head);

  // Writer thread: appends committed labels (seq order) and wakes every waiting subscriber.
  void Publish(const std::vector<StoredLabel>& labels);

  std::int64_t head() const;

  // Appends to `out` up to `max` frames with seq > `after`, in order. Returns false when the
  // window no longer reaches back to `after` (the caller reads the log instead).
  bool FramesAfter(std::int64_t after, std::size_t max, std::vector<Frame>& out) const;

  // A subscriber's wake-up: its timer is cancelled (on its executor) when the head moves.
  struct Waiter {
    explicit Waiter(const boost::asio::any_io_executor& executor) : timer(executor) {}
    boost::asio::steady_timer timer;
  };
  // Registers `waiter` for the next publish unless the head is already past `after`; returns
  // true when registered (the caller then waits on waiter->timer, which it armed beforehand).
  bool WaitAfter(std::int64_t after, const std::shared_ptr<Waiter>& waiter);

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<Frame> frames_;  // contiguous seq order, newest at the back
  std::int64_t head_;
  std::int64_t not_held_upto_;  // every label with seq <= this is only in the log
  std::vector<std::weak_ptr<Waiter>> waiters_;
};

}  // namespace plyr::labeler
