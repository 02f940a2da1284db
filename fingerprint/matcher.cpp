#include "fingerprint/matcher.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_set>

namespace plyr::fingerprint {

namespace {

using media::kItemSeconds;
using media::kSilenceItem;

// Open-addressing counter of votes per alignment bin, reused across windows (no clearing: each
// window bumps the generation).
class VoteTable {
 public:
  void Reset() {
    if (keys_.empty()) Resize(1 << 16);
    ++generation_;
    used_.clear();
  }
  void Add(std::uint32_t bin) {
    if ((used_.size() + 1) * 2 > keys_.size()) Grow();
    std::size_t slot = Find(bin);
    if (stamps_[slot] != generation_) {
      stamps_[slot] = generation_;
      keys_[slot] = bin;
      counts_[slot] = 0;
      used_.push_back(static_cast<std::uint32_t>(slot));
    }
    ++counts_[slot];
  }
  template <typename F>
  void ForEach(F&& f) const {
    for (std::uint32_t slot : used_) f(keys_[slot], counts_[slot]);
  }

 private:
  std::size_t Find(std::uint32_t bin) const {
    std::size_t slot = (bin * 0x9E3779B1u) & (keys_.size() - 1);
    while (stamps_[slot] == generation_ && keys_[slot] != bin) slot = (slot + 1) & (keys_.size() - 1);
    return slot;
  }
  void Resize(std::size_t size) {
    keys_.assign(size, 0);
    counts_.assign(size, 0);
    stamps_.assign(size, 0);
    generation_ = 1;
  }
  void Grow() {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> entries;
    entries.reserve(used_.size());
    for (std::uint32_t slot : used_) entries.emplace_back(keys_[slot], counts_[slot]);
    Resize(keys_.size() * 2);
    used_.clear();
    for (const auto& [bin, count] : entries) {
      std::size_t slot = Find(bin);
      stamps_[slot] = generation_;
      keys_[slot] = bin;
      counts_[slot] = count;
      used_.push_back(static_cast<std::uint32_t>(slot));
    }
  }

  std::vector<std::uint32_t> keys_, counts_, stamps_;
  std::vector<std::uint32_t> used_;
  std::uint32_t generation_ = 0;
};

struct Alignment {
  int ref_pos = 0;  // reference item aligned with query item 0 of the window
  double ber = 1;
  int compared = 0;
  double background = 0.5;  // mean BER of the window against the same reference elsewhere
  double ref_activity = 0.5;  // Activity() of the reference where the window aligns
};


// BER of `query` against `ref` with query item j on reference item offset + j.
Alignment FixedAlignment(std::span<const std::uint32_t> query, std::span<const std::uint32_t> ref, int offset) {
  int errors = 0, compared = 0;
  const int n = static_cast<int>(query.size());
  const int m = static_cast<int>(ref.size());
  for (int j = std::max(0, -offset); j < n && offset + j < m; ++j) {
    errors += std::popcount(query[static_cast<std::size_t>(j)] ^ ref[static_cast<std::size_t>(offset + j)]);
    ++compared;
  }
  Alignment a;
  a.ref_pos = offset;
  a.compared = compared;
  a.ber = compared ? errors / (32.0 * compared) : 1.0;
  return a;
}

// How alike the window is to the reference where it does not match: the mean BER at up to 16
// offsets spread over the reference, away from `pos`. Music against unrelated music sits near
// 0.35-0.4; a window that resembles everything (a quiet intro, a sustained texture) sits lower, and
// a match must stand out from that background, not merely pass a fixed threshold.
double BackgroundBer(std::span<const std::uint32_t> query, std::span<const std::uint32_t> ref, int pos) {
  const int n = static_cast<int>(query.size());
  const int m = static_cast<int>(ref.size());
  double sum = 0;
  int count = 0;
  for (int k = 0; k < 16; ++k) {
    const int offset = static_cast<int>(static_cast<long>(k) * (m - n) / 16);
    if (std::abs(offset - pos) < n || offset < 0) continue;
    Alignment a = FixedAlignment(query, ref, offset);
    if (a.compared * 2 < n) continue;
    sum += a.ber;
    ++count;
  }
  return count ? sum / count : 0.5;
}

// How much the audio changes within a window: the mean BER between items about a second apart.
// Sustained sound (a held chord, a pad, a fade-out) changes little however noisy its items are,
// and resembles every other sustained sound; melody and rhythm change.
double Activity(std::span<const std::uint32_t> items) {
  constexpr std::size_t kLag = 8;
  if (items.size() <= kLag) return 0;
  int errors = 0;
  for (std::size_t j = 0; j + kLag < items.size(); ++j) errors += std::popcount(items[j] ^ items[j + kLag]);
  return errors / (32.0 * static_cast<double>(items.size() - kLag));
}

// Elastic alignment: blocks of `block` items, each may sit one item earlier or later than the
// previous block's placement (cumulative), bounded by a 6 % drift. Follows tempo changes.
Alignment ElasticAlignment(std::span<const std::uint32_t> query, std::span<const std::uint32_t> ref, int offset,
                           int block) {
  const int n = static_cast<int>(query.size());
  const int m = static_cast<int>(ref.size());
  int drift = 0, errors = 0, compared = 0;
  for (int b = 0; b < n; b += block) {
    const int end = std::min(n, b + block);
    const int max_drift = 1 + static_cast<int>(0.06 * end);
    int best_errors = 0, best_compared = 0, best_shift = drift;
    double best_rate = 2;
    for (int shift = drift - 1; shift <= drift + 1; ++shift) {
      if (std::abs(shift) > max_drift) continue;
      int e = 0, c = 0;
      for (int j = b; j < end; ++j) {
        const int r = offset + shift + j;
        if (r < 0 || r >= m) continue;
        e += std::popcount(query[static_cast<std::size_t>(j)] ^ ref[static_cast<std::size_t>(r)]);
        ++c;
      }
      if (c == 0) continue;
      const double rate = e / (32.0 * c);
      if (rate < best_rate) {
        best_rate = rate;
        best_errors = e;
        best_compared = c;
        best_shift = shift;
      }
    }
    drift = best_shift;
    errors += best_errors;
    compared += best_compared;
  }
  Alignment a;
  a.ref_pos = offset;
  a.compared = compared;
  a.ber = compared ? errors / (32.0 * compared) : 1.0;
  return a;
}

struct Candidate {
  std::uint32_t bin;
  std::uint32_t votes;
};

// The best verified hit of each reference for one window of one variant.
void MatchWindow(const ReferenceIndex& index, const ReferenceIndex::Reader& reader,
                 std::span<const std::uint32_t> window, const MatchOptions& options, VoteTable& votes,
                 std::vector<std::pair<ReferenceIndex::RefId, Alignment>>& out) {
  const int n = static_cast<int>(window.size());
  const int bin_items = std::max(1, options.vote_bin_items);
  const std::uint32_t bias = static_cast<std::uint32_t>(n);  // keeps (global − j) non-negative
  const int key_bits = index.key_bits();
  const int probe_bits = std::clamp(options.probe_bits, 0, key_bits);

  votes.Reset();
  for (int j = 0; j < n; ++j) {
    const std::uint32_t item = window[static_cast<std::size_t>(j)];
    if (item == kSilenceItem) continue;
    const std::uint32_t key = index.KeyOf(item);
    auto vote = [&](std::uint32_t global) { votes.Add((global + bias - static_cast<std::uint32_t>(j)) / bin_items); };
    reader.ForEachPosting(key, options.max_postings, vote);
    for (int b = 0; b < probe_bits; ++b) reader.ForEachPosting(key ^ (1u << b), options.max_postings, vote);
  }
  std::vector<Candidate> candidates;
  votes.ForEach([&](std::uint32_t bin, std::uint32_t count) {
    if (count >= static_cast<std::uint32_t>(options.min_votes)) candidates.push_back({bin, count});
  });
  const std::size_t keep = std::min<std::size_t>(candidates.size(), static_cast<std::size_t>(options.max_candidates) * 2);
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(keep), candidates.end(),
                    [](const Candidate& a, const Candidate& b) { return a.votes > b.votes; });
  candidates.resize(keep);

  std::unordered_set<ReferenceIndex::RefId> seen_alignment;
  int verified = 0;
  for (const Candidate& c : candidates) {
    if (verified >= options.max_candidates) break;
    // The bin's centre, back in global positions of query item 0.
    const std::int64_t global0 = static_cast<std::int64_t>(c.bin) * bin_items + bin_items / 2 - bias;
    const std::int64_t probe = std::clamp<std::int64_t>(global0 + n / 2, 0, std::numeric_limits<std::uint32_t>::max());
    const auto* span = reader.Locate(static_cast<std::uint32_t>(probe));
    if (!span) continue;
    const int offset = static_cast<int>(global0 - span->start);
    // One verification per (reference, ~alignment).
    const auto key = span->ref * 131071 + static_cast<std::uint64_t>((offset + (1 << 20)) / (bin_items * 2));
    if (!seen_alignment.insert(key).second) continue;
    ++verified;
    auto ref = reader.Items(*span);
    Alignment best;
    for (int d = -bin_items; d <= bin_items; ++d) {
      Alignment a = FixedAlignment(window, ref, offset + d);
      if (a.compared * 4 >= n * 3 && a.ber < best.ber) best = a;
    }
    if (best.compared == 0) continue;
    Alignment elastic = ElasticAlignment(window, ref, best.ref_pos, options.block_items);
    if (elastic.compared * 4 >= n * 3 && elastic.ber < best.ber) best = elastic;
    best.background = BackgroundBer(window, ref, best.ref_pos);
    {
      const int from = std::clamp(best.ref_pos, 0, static_cast<int>(ref.size()));
      const int to = std::clamp(best.ref_pos + n, 0, static_cast<int>(ref.size()));
      best.ref_activity = Activity(ref.subspan(static_cast<std::size_t>(from), static_cast<std::size_t>(to - from)));
    }
    out.emplace_back(span->ref, best);
  }
}

}  // namespace

std::vector<std::pair<int, int>> QueryWindows(int items, const MatchOptions& options) {
  std::vector<std::pair<int, int>> windows;
  if (items < options.min_window_items) return windows;
  if (items <= std::max(options.max_single_window, options.window_items)) {
    windows.emplace_back(0, items);
    return windows;
  }
  const int w = options.window_items;
  const int hop = std::max(1, options.window_hop);
  int start = 0;
  for (; start + w < items; start += hop) windows.emplace_back(start, w);
  windows.emplace_back(items - w, w);  // the last window ends with the query
  return windows;
}

bool IsInformative(std::span<const std::uint32_t> items, const MatchOptions& options) {
  if (items.empty()) return false;
  std::size_t silence = 0;
  std::vector<std::uint32_t> keys;
  keys.reserve(items.size());
  for (std::uint32_t item : items) {
    if (item == kSilenceItem) ++silence;
    keys.push_back(item >> 12);  // near-identical items (a held chord, a drone) count once
  }
  std::sort(keys.begin(), keys.end());
  const auto distinct = static_cast<std::size_t>(std::unique(keys.begin(), keys.end()) - keys.begin());
  const double n = static_cast<double>(items.size());
  return silence / n <= options.max_silence && distinct / n >= options.min_distinct;
}

bool HasInformativeWindow(std::span<const std::uint32_t> items, const MatchOptions& options) {
  MatchOptions windowed = options;
  windowed.max_single_window = 0;  // always the windows of a long query
  for (const auto& [start, length] : QueryWindows(static_cast<int>(items.size()), windowed)) {
    if (IsInformative(items.subspan(static_cast<std::size_t>(start), static_cast<std::size_t>(length)), options)) {
      return true;
    }
  }
  return false;
}

MatchResult FindMatches(const ReferenceIndex& index, std::span<const QueryVariant> variants,
                        const MatchOptions& options) {
  MatchResult result;
  if (variants.empty()) return result;
  // Windows are cut in query time from the as-uploaded variant; the others cover the same time.
  const auto& base = variants.front();
  const auto windows = QueryWindows(static_cast<int>(base.items.size()), options);
  result.window_count = static_cast<int>(windows.size());

  thread_local VoteTable votes;
  auto reader = index.Read();
  std::vector<std::pair<ReferenceIndex::RefId, Alignment>> found;
  for (std::size_t w = 0; w < windows.size(); ++w) {
    const auto [start, length] = windows[w];
    const double start_s = start * kItemSeconds / base.speed;
    const double end_s = (start + length) * kItemSeconds / base.speed;
    if (!IsInformative(base.items.subspan(static_cast<std::size_t>(start), static_cast<std::size_t>(length)),
                       options)) {
      ++result.guarded_windows;
      continue;
    }
    WindowHit best_accepted, best_rejected;
    for (const auto& variant : variants) {
      // The same stretch of query time in this variant's items.
      const int v_start = static_cast<int>(std::lround(start_s * variant.speed / kItemSeconds));
      const int v_end = std::min(static_cast<int>(variant.items.size()),
                                 static_cast<int>(std::lround(end_s * variant.speed / kItemSeconds)));
      if (v_end - v_start < options.min_window_items) continue;
      auto window = variant.items.subspan(static_cast<std::size_t>(v_start), static_cast<std::size_t>(v_end - v_start));
      found.clear();
      MatchWindow(index, reader, window, options, votes, found);
      const double window_activity = Activity(window);
      for (const auto& [ref, a] : found) {
        WindowHit hit;
        hit.ref = ref;
        hit.window = static_cast<int>(w);
        hit.query_s = start_s;
        hit.ref_s = a.ref_pos * kItemSeconds;
        hit.length_s = end_s - start_s;
        hit.ber = a.ber;
        hit.speed = variant.speed;
        hit.background_ber = a.background;
        hit.ref_activity = a.ref_activity;
        hit.query_activity = window_activity;
        hit.accepted = a.ber <= options.max_ber && a.background - a.ber >= options.min_contrast &&
                       (a.ber <= options.strong_ber ||
                        std::min(hit.query_activity, hit.ref_activity) >= options.min_activity);
        WindowHit& slot = hit.accepted ? best_accepted : best_rejected;
        if (hit.ber < slot.ber) slot = hit;
      }
    }
    if (best_accepted.accepted) result.windows.push_back(best_accepted);
    if (options.keep_rejected && best_rejected.ber < 1 && !best_accepted.accepted) result.windows.push_back(best_rejected);
  }

  // Chain accepted windows of one reference whose alignments agree.
  std::map<ReferenceIndex::RefId, std::vector<const WindowHit*>> by_ref;
  for (const auto& hit : result.windows) {
    if (hit.accepted) by_ref[hit.ref].push_back(&hit);
  }
  for (auto& [ref, hits] : by_ref) {
    Match current;
    double ber_sum = 0;
    double last_query_s = 0, last_ref_s = 0;
    auto flush = [&] {
      if (current.windows == 0) return;
      current.ber = ber_sum / current.windows;
      current.score = std::max(0.0, 1 - 2 * current.ber);
      result.matches.push_back(current);
      current = Match{};
      ber_sum = 0;
    };
    for (const WindowHit* hit : hits) {
      const double dq = hit->query_s - last_query_s;
      const double expected_ref = last_ref_s + dq * hit->speed;
      const bool continues = current.windows > 0 && std::abs(hit->ref_s - expected_ref) <= 1.0 + 0.06 * dq;
      if (!continues) {
        flush();
        current.ref = ref;
        current.query_offset_s = hit->query_s;
        current.reference_offset_s = hit->ref_s;
        current.speed = hit->speed;
      }
      current.duration_s = hit->query_s + hit->length_s + media::kItemSpanSeconds / hit->speed - current.query_offset_s;
      ber_sum += hit->ber;
      ++current.windows;
      last_query_s = hit->query_s;
      last_ref_s = hit->ref_s;
    }
    flush();
  }
  std::sort(result.matches.begin(), result.matches.end(),
            [](const Match& a, const Match& b) { return a.query_offset_s < b.query_offset_s; });
  return result;
}

}  // namespace plyr::fingerprint
