#include "fingerprint/reference_index.h"

#include <mutex>

namespace plyr::fingerprint {

ReferenceIndex::ReferenceIndex(ReferenceIndexOptions options) : options_(options) {
  options_.key_bits = std::clamp(options_.key_bits, 12, 28);
}

void ReferenceIndex::Add(RefId ref, std::span<const std::uint32_t> items) {
  std::unique_lock lock(mutex_);
  std::vector<std::uint64_t> added;
  AppendLocked(ref, items, added);
  MergeLocked(std::move(added));
}

void ReferenceIndex::AddMany(std::span<const Entry> entries) {
  std::unique_lock lock(mutex_);
  std::vector<std::uint64_t> added;
  for (const auto& entry : entries) AppendLocked(entry.ref, entry.items, added);
  MergeLocked(std::move(added));
}

void ReferenceIndex::AppendLocked(RefId ref, std::span<const std::uint32_t> items, std::vector<std::uint64_t>& added) {
  RemoveLocked(ref);
  const auto start = static_cast<std::uint32_t>(items_.size());
  items_.insert(items_.end(), items.begin(), items.end());
  by_ref_[ref] = spans_.size();
  spans_.push_back(Span{ref, start, static_cast<std::uint32_t>(items.size())});
  live_.push_back(true);
  live_items_ += items.size();
  for (std::size_t i = 0; i < items.size(); ++i) {
    added.push_back(static_cast<std::uint64_t>(KeyOf(items[i])) << 32 | (start + i));
  }
}

void ReferenceIndex::MergeLocked(std::vector<std::uint64_t> added) {
  if (delta_.size() + added.size() > (1u << 20) &&
      static_cast<double>(delta_.size() + added.size()) > options_.delta_share * static_cast<double>(items_.size())) {
    RebuildLocked();
    return;
  }
  std::sort(added.begin(), added.end());
  const std::size_t old = delta_.size();
  delta_.insert(delta_.end(), added.begin(), added.end());
  std::inplace_merge(delta_.begin(), delta_.begin() + static_cast<std::ptrdiff_t>(old), delta_.end());
}

bool ReferenceIndex::Remove(RefId ref) {
  std::unique_lock lock(mutex_);
  return RemoveLocked(ref);
}

bool ReferenceIndex::RemoveLocked(RefId ref) {
  auto it = by_ref_.find(ref);
  if (it == by_ref_.end()) return false;
  live_[it->second] = false;
  live_items_ -= spans_[it->second].length;
  dead_items_ += spans_[it->second].length;
  by_ref_.erase(it);
  return true;
}

void ReferenceIndex::Compact() {
  std::unique_lock lock(mutex_);
  RebuildLocked();
}

void ReferenceIndex::RebuildLocked() {
  // Drop removed references: copy live items into a fresh array.
  if (dead_items_ > 0) {
    std::vector<std::uint32_t> items;
    items.reserve(live_items_);
    std::vector<Span> spans;
    spans.reserve(by_ref_.size());
    for (std::size_t i = 0; i < spans_.size(); ++i) {
      if (!live_[i]) continue;
      const Span& s = spans_[i];
      by_ref_[s.ref] = spans.size();
      spans.push_back(Span{s.ref, static_cast<std::uint32_t>(items.size()), s.length});
      items.insert(items.end(), items_.begin() + s.start, items_.begin() + s.start + s.length);
    }
    items_ = std::move(items);
    spans_ = std::move(spans);
    live_.assign(spans_.size(), true);
    dead_items_ = 0;
  }
  items_.shrink_to_fit();
  // Counting sort of every position by key.
  const std::size_t keys = std::size_t{1} << options_.key_bits;
  std::vector<std::uint32_t> offsets(keys + 1, 0);
  for (std::uint32_t item : items_) ++offsets[KeyOf(item) + 1];
  for (std::size_t k = 0; k < keys; ++k) offsets[k + 1] += offsets[k];
  std::vector<std::uint32_t> postings(items_.size());
  std::vector<std::uint32_t> cursor(offsets.begin(), offsets.end() - 1);
  for (std::size_t pos = 0; pos < items_.size(); ++pos) {
    postings[cursor[KeyOf(items_[pos])]++] = static_cast<std::uint32_t>(pos);
  }
  base_offsets_ = std::move(offsets);
  base_postings_ = std::move(postings);
  delta_.clear();
  delta_.shrink_to_fit();
}

ReferenceIndex::Stats ReferenceIndex::stats() const {
  std::shared_lock lock(mutex_);
  Stats s;
  s.references = by_ref_.size();
  s.items = live_items_;
  s.memory_bytes = items_.capacity() * 4 + base_postings_.capacity() * 4 + base_offsets_.capacity() * 4 +
                   delta_.capacity() * 8 + spans_.capacity() * sizeof(Span) + by_ref_.size() * 32;
  return s;
}

std::size_t ReferenceIndex::Reader::PostingCount(std::uint32_t key) const {
  std::size_t n = 0;
  if (!index_.base_offsets_.empty()) n += index_.base_offsets_[key + 1] - index_.base_offsets_[key];
  const std::uint64_t lo = static_cast<std::uint64_t>(key) << 32;
  auto first = std::lower_bound(index_.delta_.begin(), index_.delta_.end(), lo);
  auto last = std::lower_bound(first, index_.delta_.end(), lo + (std::uint64_t{1} << 32));
  return n + static_cast<std::size_t>(last - first);
}

const ReferenceIndex::Reader::Span* ReferenceIndex::Reader::Locate(std::uint32_t global_pos) const {
  const auto& spans = index_.spans_;
  auto it = std::upper_bound(spans.begin(), spans.end(), global_pos,
                             [](std::uint32_t pos, const Span& s) { return pos < s.start; });
  if (it == spans.begin()) return nullptr;
  --it;
  const auto i = static_cast<std::size_t>(it - spans.begin());
  if (!index_.live_[i] || global_pos >= it->start + it->length) return nullptr;
  return &*it;
}

const ReferenceIndex::Reader::Span* ReferenceIndex::Reader::Find(RefId ref) const {
  auto it = index_.by_ref_.find(ref);
  return it == index_.by_ref_.end() ? nullptr : &index_.spans_[it->second];
}

}  // namespace plyr::fingerprint
