#include "streamer/hot_blob_cache.h"

#include <filesystem>

namespace plyr::streamer {

std::vector<std::string> HotBlobCache::Load() {
  std::error_code ec;
  std::lock_guard lock(mutex_);
  for (const auto& shard : std::filesystem::directory_iterator(blobs_.root(), ec)) {
    if (!shard.is_directory() || shard.path().filename().string().size() != 2) continue;
    for (const auto& entry : std::filesystem::directory_iterator(shard.path(), ec)) {
      const std::string id = entry.path().filename().string();
      if (!BlobStore::IsValidId(id) || !entry.is_regular_file() || entries_.contains(id)) continue;
      recency_.push_back(id);
      entries_[id] = Entry{entry.file_size(), std::prev(recency_.end())};
      bytes_ += entry.file_size();
    }
  }
  return TrimLocked();
}

std::shared_ptr<const BlobStore::OpenBlob> HotBlobCache::Find(const std::string& file_id) {
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(file_id);
    if (it == entries_.end()) return nullptr;
    recency_.splice(recency_.begin(), recency_, it->second.recency);
  }
  auto blob = blobs_.OpenShared(file_id);
  if (!blob.ok()) {
    Forget(file_id);  // removed under us: fetched again on the next miss
    return nullptr;
  }
  return *blob;
}

bool HotBlobCache::BeginFill(const std::string& file_id, std::uint64_t size) {
  std::lock_guard lock(mutex_);
  if (size == 0 || size > budget_ / 8 || entries_.contains(file_id) || filling_.contains(file_id)) return false;
  filling_.insert(file_id);
  return true;
}

std::vector<std::string> HotBlobCache::EndFill(const std::string& file_id, std::uint64_t size, bool stored) {
  std::lock_guard lock(mutex_);
  filling_.erase(file_id);
  if (!stored || entries_.contains(file_id)) return {};
  recency_.push_front(file_id);
  entries_[file_id] = Entry{size, recency_.begin()};
  bytes_ += size;
  return TrimLocked();
}

void HotBlobCache::Forget(const std::string& file_id) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(file_id);
  if (it == entries_.end()) return;
  bytes_ -= it->second.size;
  recency_.erase(it->second.recency);
  entries_.erase(it);
}

std::vector<std::string> HotBlobCache::TrimLocked() {
  std::vector<std::string> evicted;
  while (bytes_ > budget_ && !recency_.empty()) {
    const std::string id = recency_.back();
    recency_.pop_back();
    bytes_ -= entries_.at(id).size;
    entries_.erase(id);
    evicted.push_back(id);
  }
  return evicted;
}

std::uint64_t HotBlobCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

std::size_t HotBlobCache::entries() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace plyr::streamer
