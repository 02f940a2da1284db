// Every position of every reference, findable by its fingerprint items: an inverted index from
// an item's top `key_bits` bits to the positions that hold it.
//
// All references' items are kept end to end in one array ("global positions"); a posting is an
// index into that array, so each indexed second costs about 8 items × (4 bytes of item + 4 of
// posting). Postings live in two parts: a compressed-row base (one offset per key, postings
// grouped by key), built at load, and a delta (a hash map of key to positions) of the references
// added since. When the delta outgrows a share of all postings, both are rebuilt into a new base
// (a counting sort), dropping removed references and their items. Removing is a tombstone until
// then.
//
// Thread safety: any number of readers (a Reader holds a shared lock for its lifetime) or one
// writer (Add, Remove, Compact) at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <shared_mutex>
#include <span>
#include <unordered_map>
#include <vector>

namespace plyr::fingerprint {

struct ReferenceIndexOptions {
  int key_bits = 22;  // 12-28; more bits: shorter posting lists, fewer noisy items found
  // Rebuild the base when the delta holds more than this share of all postings (and > 1 M).
  double delta_share = 0.125;
};

class ReferenceIndex {
 public:
  using RefId = std::uint64_t;

  explicit ReferenceIndex(ReferenceIndexOptions options = {});

  // Adds a reference under a caller-chosen id; replaces an earlier one with the same id.
  void Add(RefId ref, std::span<const std::uint32_t> items);
  // Adds many at once (loading, bulk import): one merge or rebuild instead of one per reference.
  struct Entry {
    RefId ref;
    std::vector<std::uint32_t> items;
  };
  void AddMany(std::span<const Entry> entries);
  // Loading at start: appends without indexing, so a large index is built by one Compact() after
  // the last Load rather than a rebuild per batch. Loaded references are found only after it.
  void Load(std::span<const Entry> entries);
  // Returns false when `ref` is not indexed.
  bool Remove(RefId ref);
  // Folds the delta into the base now (normally automatic).
  void Compact();

  struct Stats {
    std::size_t references = 0;
    std::size_t items = 0;          // indexed items of live references
    std::size_t memory_bytes = 0;   // items, postings, key offsets, reference table
  };
  Stats stats() const;
  int key_bits() const { return options_.key_bits; }

  // A consistent view for matching; holds a shared lock until destroyed.
  class Reader {
   public:
    // Calls f(global_pos) for every position whose item has this key (base, then delta).
    template <typename F>
    void ForEachPosting(std::uint32_t key, std::size_t max_postings, F&& f) const;
    std::size_t PostingCount(std::uint32_t key) const;
    // The live reference holding a global position, or nullptr.
    struct Span {
      RefId ref;
      std::uint32_t start;  // global position of item 0
      std::uint32_t length;
    };
    const Span* Locate(std::uint32_t global_pos) const;
    const Span* Find(RefId ref) const;
    std::span<const std::uint32_t> Items(const Span& span) const {
      return {index_.items_.data() + span.start, span.length};
    }

   private:
    friend class ReferenceIndex;
    explicit Reader(const ReferenceIndex& index) : index_(index), lock_(index.mutex_) {}
    const ReferenceIndex& index_;
    std::shared_lock<std::shared_mutex> lock_;
  };
  Reader Read() const { return Reader(*this); }

  std::uint32_t KeyOf(std::uint32_t item) const { return item >> (32 - options_.key_bits); }

 private:
  using Span = Reader::Span;
  void AppendLocked(RefId ref, std::span<const std::uint32_t> items);
  void MergeLocked(std::size_t added);
  void RebuildLocked();
  bool RemoveLocked(RefId ref);

  ReferenceIndexOptions options_;
  mutable std::shared_mutex mutex_;
  std::vector<std::uint32_t> items_;       // every reference's items, end to end
  std::vector<Span> spans_;                // ordered by start, removed ones included until a rebuild
  std::vector<bool> live_;                 // parallel to spans_
  std::unordered_map<RefId, std::size_t> by_ref_;  // → index in spans_
  std::size_t live_items_ = 0;
  std::size_t dead_items_ = 0;
  // Base: postings of key k are base_postings_[base_offsets_[k] .. base_offsets_[k+1]).
  std::vector<std::uint32_t> base_offsets_;
  std::vector<std::uint32_t> base_postings_;
  // Delta: key → positions added since the base was built.
  std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> delta_;
  std::size_t delta_postings_ = 0;
};

template <typename F>
void ReferenceIndex::Reader::ForEachPosting(std::uint32_t key, std::size_t max_postings, F&& f) const {
  const auto& ix = index_;
  if (!ix.base_offsets_.empty()) {
    const std::uint32_t begin = ix.base_offsets_[key];
    const std::uint32_t end = ix.base_offsets_[key + 1];
    if (end - begin > max_postings) return;  // a key this common says nothing (silence, stop words)
    for (std::uint32_t i = begin; i < end; ++i) f(ix.base_postings_[i]);
  }
  if (!ix.delta_.empty()) {
    auto it = ix.delta_.find(key);
    if (it != ix.delta_.end() && it->second.size() <= max_postings) {
      for (std::uint32_t pos : it->second) f(pos);
    }
  }
}

}  // namespace plyr::fingerprint
