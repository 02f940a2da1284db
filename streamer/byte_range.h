// Byte ranges (RFC 9110 section 14): parsing a Range header and resolving it against a
// representation length.
//
// Pure functions, no I/O, thread-safe. The streamer evaluates If-Range and the method before
// calling these (Range applies to GET only); this file only knows bytes.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace plyr::streamer {

// One satisfiable range, resolved against a length: bytes [first, first + length).
struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t length = 0;
  std::uint64_t last() const { return first + length - 1; }
  friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

// What to answer for a Range header on a representation of a known length.
enum class RangeOutcome {
  kIgnore,          // no usable Range: answer 200 with the whole representation
  kPartial,         // answer 206 with `ranges` (one range: plain 206; several: multipart)
  kUnsatisfiable,   // answer 416 with `Content-Range: bytes */<length>`
};

struct RangeDecision {
  RangeOutcome outcome = RangeOutcome::kIgnore;
  std::vector<ByteRange> ranges;  // non-empty only for kPartial; ascending when several
};

// Limits that keep a hostile Range header cheap.
struct RangeLimits {
  std::size_t max_header_bytes = 1024;  // a longer header is ignored (200), never parsed
  std::size_t max_ranges = 8;           // more ranges than this in the header: ignored (200)
};

// Resolves `header` (the Range field value, e.g. "bytes=0-499") against `length`.
//
// - Syntax errors, unknown units, `bytes=-0`, `first > last`, numbers that overflow 64 bits,
//   and headers over the limits yield kIgnore (RFC 9110 allows ignoring an invalid Range).
// - A syntactically valid set with no satisfiable range yields kUnsatisfiable
//   (e.g. first-pos >= length; any range on a zero-length representation).
// - Unsatisfiable members of a set that has satisfiable ones are dropped.
// - `last` past the end is clamped; a suffix longer than the length means the whole thing.
// - Overlapping or adjacent ranges are coalesced (in ascending order) when there are several,
//   so a multipart answer never repeats bytes; a single range is returned as asked.
RangeDecision ResolveRange(std::string_view header, std::uint64_t length,
                           const RangeLimits& limits = {});

}  // namespace plyr::streamer
