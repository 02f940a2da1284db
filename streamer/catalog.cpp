#include "streamer/catalog.h"

#include <algorithm>
#include <mutex>

namespace plyr::streamer {

StatusOr<std::unique_ptr<Catalog>> Catalog::Open(std::unique_ptr<CatalogStore> store) {
  std::unique_ptr<Catalog> catalog(new Catalog(std::move(store)));
  if (Status loaded = catalog->Reload(); !loaded.ok()) {
    return Status(loaded.code(), "catalog load: " + loaded.message());
  }
  return catalog;
}

Status Catalog::Reload() {
  std::lock_guard writer(write_mutex_);
  std::vector<FileRecord> files;
  std::vector<Track> tracks;
  if (Status read = store_->LoadAll(&files, &tracks); !read.ok()) return read;
  std::unique_lock lock(mutex_);
  files_.clear();
  tracks_.clear();
  rendition_owner_.clear();
  for (auto& file : files) files_[file.file_id] = std::move(file);
  for (auto& track : tracks) {
    IndexLocked(track);
    const std::string id = track.file_id;
    tracks_[id] = std::make_shared<const Track>(std::move(track));
  }
  return OkStatus();
}

Status Catalog::ApplyChange(std::string_view payload) {
  const auto space = payload.find(' ');
  const std::string_view kind = payload.substr(0, space);
  const std::string file_id(space == std::string_view::npos ? std::string_view() : payload.substr(space + 1));
  if (file_id.empty() || (kind != "track" && kind != "file")) {
    return Status(StatusCode::kInvalidArgument, "not a catalog change: " + std::string(payload.substr(0, 64)));
  }
  // Under the writers' lock: a local write cannot land between the read and the mirror's update
  // and be overwritten by an older state.
  std::lock_guard writer(write_mutex_);
  if (kind == "track") {
    auto track = store_->LoadTrack(file_id);
    if (!track.ok()) return track.status();
    std::unique_lock lock(mutex_);
    SetTrackLocked(file_id, std::move(*track));
    return OkStatus();
  }
  auto file = store_->LoadFile(file_id);
  if (!file.ok()) return file.status();
  std::unique_lock lock(mutex_);
  if (*file) {
    files_[file_id] = std::move(**file);
  } else {
    files_.erase(file_id);
  }
  return OkStatus();
}

void Catalog::IndexLocked(const Track& track) {
  for (const auto& [name, r] : track.renditions) rendition_owner_[r.file_id] = track.file_id;
}

void Catalog::UnindexLocked(const std::string& file_id) {
  auto it = tracks_.find(file_id);
  if (it == tracks_.end()) return;
  for (const auto& [name, r] : it->second->renditions) {
    auto owner = rendition_owner_.find(r.file_id);
    if (owner != rendition_owner_.end() && owner->second == file_id) rendition_owner_.erase(owner);
  }
}

void Catalog::SetTrackLocked(const std::string& file_id, std::optional<Track> track) {
  UnindexLocked(file_id);
  if (!track) {
    tracks_.erase(file_id);
    return;
  }
  IndexLocked(*track);
  tracks_[file_id] = std::make_shared<const Track>(std::move(*track));
}

std::shared_ptr<const Track> Catalog::FindTrack(std::string_view file_id) const {
  std::shared_lock lock(mutex_);
  auto it = tracks_.find(std::string(file_id));
  return it == tracks_.end() ? nullptr : it->second;
}

std::shared_ptr<const Track> Catalog::FindByAnyFileId(std::string_view file_id) const {
  std::shared_lock lock(mutex_);
  const std::string key(file_id);
  if (auto it = tracks_.find(key); it != tracks_.end()) return it->second;
  if (auto owner = rendition_owner_.find(key); owner != rendition_owner_.end()) {
    if (auto it = tracks_.find(owner->second); it != tracks_.end()) return it->second;
  }
  return nullptr;
}

std::optional<FileRecord> Catalog::FindFile(std::string_view file_id) const {
  std::shared_lock lock(mutex_);
  auto it = files_.find(std::string(file_id));
  if (it == files_.end()) return std::nullopt;
  return it->second;
}

Status Catalog::PutFile(const FileRecord& file) {
  std::lock_guard writer(write_mutex_);
  if (Status inserted = store_->PutFile(file); !inserted.ok()) return inserted;
  std::unique_lock lock(mutex_);
  files_.try_emplace(file.file_id, file);
  return OkStatus();
}

Status Catalog::PutTrack(const Track& track) {
  std::lock_guard writer(write_mutex_);
  // Content-addressed ids: the same bytes uploaded twice are one file, and an artist's two
  // uploads of one recording share their renditions. Another owner's file is refused (by the
  // store, in the write's transaction, so instances sharing it cannot race past the check): it
  // would be served under this track's gate.
  const Status written = store_->PutTrack(track);
  if (written.code() == StatusCode::kFailedPrecondition) return written;
  if (!written.ok()) return Status(written.code(), "catalog write failed: " + written.message());
  std::unique_lock lock(mutex_);
  SetTrackLocked(track.file_id, track);
  return OkStatus();
}

Status Catalog::RemoveTrack(std::string_view file_id, bool* existed) {
  std::lock_guard writer(write_mutex_);
  const std::string key(file_id);
  auto removed = store_->RemoveTrack(key);
  if (!removed.ok()) return removed.status();
  *existed = *removed;
  std::unique_lock lock(mutex_);
  SetTrackLocked(key, std::nullopt);
  return OkStatus();
}

std::vector<std::string> Catalog::TracksNaming(std::string_view file_id) const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> ids;
  for (const auto& [id, track] : tracks_) {
    bool names = id == file_id;
    for (const auto& [name, r] : track->renditions) names = names || r.file_id == file_id;
    if (names) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::unordered_map<std::string, std::vector<std::string>> Catalog::TracksNamingEachFile() const {
  std::unordered_map<std::string, std::vector<std::string>> naming;
  {
    std::shared_lock lock(mutex_);
    for (const auto& [id, track] : tracks_) {
      naming[id].push_back(id);
      for (const auto& [name, r] : track->renditions) {
        auto& tracks = naming[r.file_id];
        if (tracks.empty() || tracks.back() != id) tracks.push_back(id);
      }
    }
  }
  for (auto& [file, tracks] : naming) {
    std::sort(tracks.begin(), tracks.end());
    tracks.erase(std::unique(tracks.begin(), tracks.end()), tracks.end());
  }
  return naming;
}

std::vector<FileRecord> Catalog::ListFiles(std::string_view after, std::size_t limit) const {
  std::shared_lock lock(mutex_);
  std::vector<FileRecord> files;
  for (const auto& [id, file] : files_) {
    if (id > after) files.push_back(file);
  }
  std::sort(files.begin(), files.end(), [](const FileRecord& a, const FileRecord& b) { return a.file_id < b.file_id; });
  if (files.size() > limit) files.resize(limit);
  return files;
}

Status Catalog::RemoveFile(std::string_view file_id, FileRemoval* removal) {
  std::lock_guard writer(write_mutex_);
  const std::string key(file_id);
  auto removed = store_->RemoveFile(key);
  if (!removed.ok()) return removed.status();
  std::unique_lock lock(mutex_);
  for (const auto& id : removed->tracks_removed) SetTrackLocked(id, std::nullopt);
  // Every other track that named the file loses those renditions.
  for (const auto& [id, track] : std::unordered_map(tracks_)) {
    bool names = false;
    for (const auto& [name, r] : track->renditions) names = names || r.file_id == key;
    if (!names) continue;
    Track trimmed = *track;
    std::erase_if(trimmed.renditions, [&](const auto& entry) { return entry.second.file_id == key; });
    SetTrackLocked(id, std::move(trimmed));
  }
  files_.erase(key);
  *removal = std::move(*removed);
  return OkStatus();
}

}  // namespace plyr::streamer
