#include "fingerprint/reference_index.h"

#include <mutex>

namespace plyr::fingerprint {

ReferenceIndex::ReferenceIndex(ReferenceIndexOptions options) : options_(options) {
  options_.key_bits = std::clamp(options_.key_bits, 12, 28);
}

void ReferenceIndex::Add(RefId ref, std::span<const std::uint32_t> items) {
  std::unique_lock lock(mutex_);
  AppendLocked(ref, items);
  MergeLocked(items.size());
}

void ReferenceIndex::AddMany(std::span<const Entry> entries) {
  std::unique_lock lock(mutex_);
  std::size_t added = 0;
  for (const auto& entry : entries) {
    RemoveLocked(entry.ref);
    added += entry.items.size();
  }
  // Many at once: append, then one rebuild when that is cheaper than filling the delta.
  const std::size_t start = items_.size();
  for (const auto& entry : entries) {
    by_ref_[entry.ref] = spans_.size();
    spans_.push_back(Span{entry.ref, static_cast<std::uint32_t>(items_.size()),
                          static_cast<std::uint32_t>(entry.items.size())});
    live_.push_back(true);
    items_.insert(items_.end(), entry.items.begin(), entry.items.end());
    live_items_ += entry.items.size();
  }
  if (added > (1u << 20) || base_offsets_.empty()) {
    RebuildLocked();
    return;
  }
  for (std::size_t pos = start; pos < items_.size(); ++pos) {
    delta_[KeyOf(items_[pos])].push_back(static_cast<std::uint32_t>(pos));
  }
  delta_postings_ += added;
  MergeLocked(0);
}

void ReferenceIndex::Load(std::span<const Entry> entries) {
  std::unique_lock lock(mutex_);
  for (const auto& entry : entries) {
    RemoveLocked(entry.ref);
    by_ref_[entry.ref] = spans_.size();
    spans_.push_back(Span{entry.ref, static_cast<std::uint32_t>(items_.size()),
                          static_cast<std::uint32_t>(entry.items.size())});
    live_.push_back(true);
    items_.insert(items_.end(), entry.items.begin(), entry.items.end());
    live_items_ += entry.items.size();
  }
}

void ReferenceIndex::AppendLocked(RefId ref, std::span<const std::uint32_t> items) {
  RemoveLocked(ref);
  const auto start = static_cast<std::uint32_t>(items_.size());
  items_.insert(items_.end(), items.begin(), items.end());
  by_ref_[ref] = spans_.size();
  spans_.push_back(Span{ref, start, static_cast<std::uint32_t>(items.size())});
  live_.push_back(true);
  live_items_ += items.size();
  for (std::size_t i = 0; i < items.size(); ++i) {
    delta_[KeyOf(items[i])].push_back(static_cast<std::uint32_t>(start + i));
  }
  delta_postings_ += items.size();
}

void ReferenceIndex::MergeLocked(std::size_t) {
  if (delta_postings_ > (1u << 20) &&
      static_cast<double>(delta_postings_) > options_.delta_share * static_cast<double>(items_.size())) {
    RebuildLocked();
  }
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
  delta_ = {};
  delta_postings_ = 0;
}

ReferenceIndex::Stats ReferenceIndex::stats() const {
  std::shared_lock lock(mutex_);
  Stats s;
  s.references = by_ref_.size();
  s.items = live_items_;
  // The delta's map costs about 48 bytes a key beyond its positions.
  s.memory_bytes = items_.capacity() * 4 + base_postings_.capacity() * 4 + base_offsets_.capacity() * 4 +
                   delta_postings_ * 4 + delta_.size() * 48 + spans_.capacity() * sizeof(Span) +
                   by_ref_.size() * 32 + live_.capacity() / 8;
  return s;
}

std::size_t ReferenceIndex::Reader::PostingCount(std::uint32_t key) const {
  std::size_t n = 0;
  if (!index_.base_offsets_.empty()) n += index_.base_offsets_[key + 1] - index_.base_offsets_[key];
  if (auto it = index_.delta_.find(key); it != index_.delta_.end()) n += it->second.size();
  return n;
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
