#include "labeler/label_feed.h"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "labeler/label_cbor.h"
#include "labeler/ws_frame.h"

namespace plyr::labeler {

FrameRun::FrameRun(const std::vector<StoredLabel>& labels) {
  seqs_.reserve(labels.size());
  ends_.reserve(labels.size());
  for (const auto& stored : labels) {
    bytes_ += EncodeWsFrame(WsOpcode::kBinary, EncodeLabelsFrame(stored.seq, stored.cbor));
    seqs_.push_back(stored.seq);
    ends_.push_back(bytes_.size());
  }
}

std::size_t FrameRun::FirstAfter(std::int64_t after) const {
  return static_cast<std::size_t>(std::upper_bound(seqs_.begin(), seqs_.end(), after) - seqs_.begin());
}

std::string_view FrameRun::Bytes(std::size_t begin, std::size_t end) const {
  const std::size_t from = begin == 0 ? 0 : ends_[begin - 1];
  return std::string_view(bytes_).substr(from, ends_[end - 1] - from);
}

LabelFeed::LabelFeed(std::size_t capacity, std::int64_t head)
    : capacity_(std::max<std::size_t>(capacity, 1)), head_(head), not_held_upto_(head) {}

void LabelFeed::Publish(const std::vector<StoredLabel>& labels) {
  if (labels.empty()) return;
  // Encode outside the lock: subscribers keep reading older runs meanwhile.
  auto run = std::make_shared<const FrameRun>(labels);
  std::vector<std::weak_ptr<Waiter>> to_wake;
  {
    std::lock_guard lock(mutex_);
    frames_held_ += run->size();
    runs_.push_back(std::move(run));
    // Whole runs leave the window, oldest first, while the rest still holds `capacity_` frames.
    while (runs_.size() > 1 && frames_held_ - runs_.front()->size() >= capacity_) {
      not_held_upto_ = runs_.front()->last_seq();
      frames_held_ -= runs_.front()->size();
      runs_.pop_front();
    }
    head_ = std::max(head_, labels.back().seq);
    to_wake.swap(waiters_);
  }
  for (auto& weak : to_wake) {
    if (auto waiter = weak.lock()) {
      boost::asio::post(waiter->timer.get_executor(), [waiter] { waiter->timer.cancel(); });
    }
  }
}

std::int64_t LabelFeed::head() const {
  std::lock_guard lock(mutex_);
  return head_;
}

bool LabelFeed::FramesAfter(std::int64_t after, std::size_t max, std::vector<FrameSpan>& out) const {
  std::lock_guard lock(mutex_);
  if (after >= head_) return true;
  if (after < not_held_upto_) return false;  // some label after `after` is only in the log
  auto it = std::upper_bound(runs_.begin(), runs_.end(), after,
                             [](std::int64_t seq, const auto& run) { return seq < run->last_seq(); });
  for (; it != runs_.end() && max > 0; ++it) {
    const std::size_t begin = (*it)->FirstAfter(after);
    const std::size_t end = std::min((*it)->size(), begin + max);
    out.push_back(FrameSpan{*it, begin, end});
    max -= end - begin;
  }
  return true;
}

bool LabelFeed::WaitAfter(std::int64_t after, const std::shared_ptr<Waiter>& waiter) {
  std::lock_guard lock(mutex_);
  if (head_ > after) return false;
  // Drop registrations of subscribers that have gone, so an idle feed does not grow.
  if (waiters_.size() >= 64 && waiters_.size() % 64 == 0) {
    std::erase_if(waiters_, [](const std::weak_ptr<Waiter>& w) { return w.expired(); });
  }
  waiters_.push_back(waiter);
  return true;
}

}  // namespace plyr::labeler
