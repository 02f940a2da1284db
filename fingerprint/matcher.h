// Finds every reference that occurs in a query fingerprint, at any offset.
//
// The query is cut into windows (one window for a short query). For each window:
//  1. Guard: a window of mostly silence, or with too few distinct items (a drone, a loop of a
//     second or two), carries no identity and is skipped, so it can never produce a match.
//  2. Candidates: every item looks up its key, and the keys one bit away (multi-probe), in the
//     index; each posting votes for the alignment (reference position − query position), in bins
//     of a few items. The best-voted alignments become candidates.
//  3. Verification: a candidate is aligned exactly (best offset near the voted one), then
//     elastically (blocks of about 2 s may each slip one item against the last, which follows
//     tempo changes of several percent), and scored by bit error rate (BER) over the window.
//     It is accepted when the BER is at most `max_ber`, stands out from the window's BER against
//     the rest of the same work (`min_contrast`: a window that resembles everything, like noise or
//     a quiet intro, does not), and the audio changes within the window on both sides
//     (`min_activity`: sustained sound, a held chord or a fade-out, resembles all sustained sound;
//     a BER under `strong_ber` is accepted without it, as no impostor comes that close).
// Accepted windows of one reference whose alignments agree are chained into one match.
//
// Speed variants of the query (common/media/chromaprint.h) are matched the same way; a match
// found in several keeps the variant with the lowest BER.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/media/chromaprint.h"
#include "fingerprint/reference_index.h"

namespace plyr::fingerprint {

struct MatchOptions {
  int window_items = 80;       // ≈ 10 s: a query longer than max_single_window is cut into these
  int window_hop = 40;         // ≈ 5 s
  int max_single_window = 120;  // ≈ 15 s: up to this length the query is one window
  int min_window_items = 40;    // ≈ 5 s: shorter queries are refused by the caller
  int probe_bits = 20;          // multi-probe: also look up keys with one of these bits flipped
  std::size_t max_postings = 20000;  // a key with more postings is skipped (silence, stop words)
  int vote_bin_items = 4;
  int min_votes = 2;
  int max_candidates = 12;
  int block_items = 16;
  // Acceptance (bench/RESULTS.md has how these were chosen on one seed and checked on another):
  double max_ber = 0.21;        // the BER over the window at most this,
  double min_contrast = 0.15;   // at least this far under the window's BER elsewhere in the work,
  double min_activity = 0.22;   // and both sides changing at least this much within the window,
  double strong_ber = 0.10;     // unless the BER is this low (a slow passage of the same recording)
  double min_distinct = 0.35;   // guard: distinct items / window items
  double max_silence = 0.5;     // guard: silence items / window items
  bool keep_rejected = false;   // also return the best rejected candidate per window (calibration)
};

struct QueryVariant {
  double speed = 1.0;  // the speed-up this variant undoes (1.0: as uploaded)
  std::span<const std::uint32_t> items;
};

// One window's verified alignment with one reference.
struct WindowHit {
  ReferenceIndex::RefId ref = 0;
  int window = 0;       // index of the window in the query
  double query_s = 0;   // where the window starts, in the query's own time
  double ref_s = 0;     // where it aligns in the reference
  double length_s = 0;  // the window's length in query time
  double ber = 1;
  double background_ber = 0.5;  // the window against the same reference elsewhere
  double query_activity = 0.5;  // how much the window's audio changes (BER between items ~1 s apart)
  double ref_activity = 0.5;    // the same for the reference where it aligns
  double speed = 1;
  bool accepted = false;
};

struct Match {
  ReferenceIndex::RefId ref = 0;
  double query_offset_s = 0;
  double reference_offset_s = 0;
  double duration_s = 0;
  double ber = 1;    // over the chained windows
  double score = 0;  // 1 − 2·BER: 1 identical, 0 unrelated
  double speed = 1;
  int windows = 0;
};

struct MatchResult {
  std::vector<Match> matches;       // by query offset
  std::vector<WindowHit> windows;   // per window, its best accepted hit (and the best rejected
                                    // one when keep_rejected)
  int window_count = 0;
  int guarded_windows = 0;          // skipped by the silence/diversity guard
};

// Windows a query of `items` items is cut into: (start, length) pairs.
std::vector<std::pair<int, int>> QueryWindows(int items, const MatchOptions& options);

// True when a window carries enough identity to be matched (the guard of step 1).
bool IsInformative(std::span<const std::uint32_t> items, const MatchOptions& options);
// True when some window of a fingerprint as long as a reference passes that guard: a reference
// that loops a short phrase may be uniform as a whole and still recognisable window by window.
bool HasInformativeWindow(std::span<const std::uint32_t> items, const MatchOptions& options);

MatchResult FindMatches(const ReferenceIndex& index, std::span<const QueryVariant> variants,
                        const MatchOptions& options);

}  // namespace plyr::fingerprint
