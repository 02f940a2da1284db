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
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "labeler/label.h"

namespace plyr::labeler {

// Consecutive subscribeLabels frames in one buffer: every label of one commit (or of one page of
// the log), back to back, so a subscriber sends a whole run, or its tail, as one buffer.
class FrameRun {
 public:
  // Encodes `labels` (seq order) as complete binary WebSocket frames.
  explicit FrameRun(const std::vector<StoredLabel>& labels);

  std::size_t size() const { return seqs_.size(); }
  std::int64_t seq(std::size_t i) const { return seqs_[i]; }
  std::int64_t last_seq() const { return seqs_.back(); }
  // The index of the first frame with seq > `after` (size() if none).
  std::size_t FirstAfter(std::int64_t after) const;
  // The bytes of frames [begin, end).
  std::string_view Bytes(std::size_t begin, std::size_t end) const;

 private:
  std::string bytes_;
  std::vector<std::int64_t> seqs_;
  std::vector<std::size_t> ends_;  // ends_[i]: where frame i ends in bytes_
};

// Frames [begin, end) of a run: what one subscriber sends in one piece.
struct FrameSpan {
  std::shared_ptr<const FrameRun> run;
  std::size_t begin = 0;
  std::size_t end = 0;

  std::size_t count() const { return end - begin; }
  std::int64_t first_seq() const { return run->seq(begin); }
  std::int64_t last_seq() const { return run->seq(end - 1); }
  std::string_view bytes() const { return run->Bytes(begin, end); }
};

class LabelFeed {
 public:
  // Keeps at least the newest `capacity` frames (whole runs: up to one commit more); `head` is the
  // log's newest seq at start.
  LabelFeed(std::size_t capacity, std::int64_t head);

  // Writer thread: appends one commit's labels (seq order) as one run and wakes every waiting
  // subscriber.
  void Publish(const std::vector<StoredLabel>& labels);

  std::int64_t head() const;

  // Appends to `out` the frames with seq > `after`, in order, at most `max` of them, as spans of
  // the shared runs. Returns false when the window no longer reaches back to `after` (the caller
  // reads the log instead).
  bool FramesAfter(std::int64_t after, std::size_t max, std::vector<FrameSpan>& out) const;

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
  std::deque<std::shared_ptr<const FrameRun>> runs_;  // seq order, newest at the back
  std::size_t frames_held_ = 0;                      // frames in runs_
  std::int64_t head_;
  std::int64_t not_held_upto_;  // every label with seq <= this is only in the log
  std::vector<std::weak_ptr<Waiter>> waiters_;
};

}  // namespace plyr::labeler
