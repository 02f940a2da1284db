#include "labeler/label_feed.h"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "labeler/label_cbor.h"
#include "labeler/ws_frame.h"

namespace plyr::labeler {

LabelFeed::LabelFeed(std::size_t capacity, std::int64_t head) : capacity_(std::max<std::size_t>(capacity, 1)), head_(head), not_held_upto_(head) {}

void LabelFeed::Publish(const std::vector<StoredLabel>& labels) {
  if (labels.empty()) return;
  // Encode outside the lock: subscribers keep reading older frames meanwhile.
  std::vector<Frame> fresh;
  fresh.reserve(labels.size());
  for (const auto& stored : labels) {
    fresh.push_back({stored.seq, std::make_shared<const std::string>(
                                     EncodeWsFrame(WsOpcode::kBinary, EncodeLabelsFrame(stored.seq, stored.cbor)))});
  }
  std::vector<std::weak_ptr<Waiter>> to_wake;
  {
    std::lock_guard lock(mutex_);
    for (auto& frame : fresh) frames_.push_back(std::move(frame));
    while (frames_.size() > capacity_) {
      not_held_upto_ = frames_.front().seq;
      frames_.pop_front();
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

bool LabelFeed::FramesAfter(std::int64_t after, std::size_t max, std::vector<Frame>& out) const {
  std::lock_guard lock(mutex_);
  if (after >= head_) return true;
  if (after < not_held_upto_) return false;  // some label after `after` is only in the log
  auto it = std::upper_bound(frames_.begin(), frames_.end(), after,
                             [](std::int64_t seq, const Frame& f) { return seq < f.seq; });
  for (; it != frames_.end() && max > 0; ++it, --max) out.push_back(*it);
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
