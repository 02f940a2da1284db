// Range header resolution, RFC 9110 section 14.
//
// Grammar handled (section 14.1.1 and the list rule of section 5.6.1.2):
//
//   ranges-specifier = range-unit "=" range-set
//   range-set        = 1#range-spec          ; empty elements tolerated, OWS around commas
//   range-spec       = int-range / suffix-range
//   int-range        = first-pos "-" [ last-pos ]
//   suffix-range     = "-" suffix-length
//
// The whole header is ignored on any error: an invalid Range is allowed to be ignored, and
// answering 200 is always safe, while guessing at a partly broken header is not.

#include "streamer/byte_range.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <system_error>

namespace plyr::streamer {
namespace {

constexpr std::string_view kBytesUnit = "bytes";

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Range units are case-insensitive (RFC 9110 section 14.1).
bool IsBytesUnit(std::string_view unit) {
  if (unit.size() != kBytesUnit.size()) return false;
  for (std::size_t i = 0; i < unit.size(); ++i) {
    if (AsciiLower(unit[i]) != kBytesUnit[i]) return false;
  }
  return true;
}

// 1*DIGIT into a uint64. from_chars alone would accept a prefix ("12abc"), so the whole
// text must be consumed. For unsigned types it takes no sign, no spaces and no "0x".
std::optional<std::uint64_t> ParseDigits(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value, 10);
  if (ec != std::errc() || ptr != end) return std::nullopt;  // overflow lands here too
  return value;
}

// One syntactically valid range-spec, before it is resolved against a length.
struct RangeSpec {
  bool is_suffix = false;
  std::uint64_t first = 0;             // int-range only
  std::optional<std::uint64_t> last;   // int-range only; absent for "N-"
  std::uint64_t suffix_length = 0;     // suffix-range only
};

// Parses one non-empty, already trimmed list element. nullopt means the header is invalid;
// "-0" and "first > last" count as invalid, as the contract in byte_range.h says.
std::optional<RangeSpec> ParseRangeSpec(std::string_view element) {
  const std::size_t dash = element.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const std::string_view before = element.substr(0, dash);
  const std::string_view after = element.substr(dash + 1);

  RangeSpec spec;
  if (before.empty()) {
    const std::optional<std::uint64_t> suffix = ParseDigits(after);
    if (!suffix || *suffix == 0) return std::nullopt;
    spec.is_suffix = true;
    spec.suffix_length = *suffix;
    return spec;
  }

  const std::optional<std::uint64_t> first = ParseDigits(before);
  if (!first) return std::nullopt;
  spec.first = *first;
  if (after.empty()) return spec;  // "N-": to the end

  // A second '-' (e.g. "1-2-3") fails here because '-' is not a digit.
  const std::optional<std::uint64_t> last = ParseDigits(after);
  if (!last || *last < *first) return std::nullopt;
  spec.last = *last;
  return spec;
}

// Resolves a valid spec against `length`; nullopt means this member is unsatisfiable.
std::optional<ByteRange> Satisfy(const RangeSpec& spec, std::uint64_t length) {
  if (length == 0) return std::nullopt;  // nothing to select, whatever was asked
  if (spec.is_suffix) {
    const std::uint64_t n = std::min(spec.suffix_length, length);
    return ByteRange{length - n, n};
  }
  if (spec.first >= length) return std::nullopt;
  // Clamping before the subtraction keeps "0-18446744073709551615" from overflowing.
  const std::uint64_t last = std::min(spec.last.value_or(length - 1), length - 1);
  return ByteRange{spec.first, last - spec.first + 1};
}

// Sorts ascending and merges ranges that overlap or touch, so that a multipart body never
// sends a byte twice and never splits what could be one part.
void Coalesce(std::vector<ByteRange>& ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.first < b.first; });
  std::size_t out = 0;
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    ByteRange& current = ranges[out];
    const ByteRange& next = ranges[i];
    // Every resolved range ends before `length`, so last() + 1 cannot overflow.
    if (next.first <= current.last() + 1) {
      current.length = std::max(current.last(), next.last()) - current.first + 1;
    } else {
      ranges[++out] = next;
    }
  }
  if (!ranges.empty()) ranges.resize(out + 1);
}

}  // namespace

RangeDecision ResolveRange(std::string_view header, std::uint64_t length,
                           const RangeLimits& limits) {
  // The size check comes first so a hostile header costs nothing to reject.
  if (header.size() > limits.max_header_bytes) return {};

  // Field values carry no surrounding whitespace (RFC 9110 section 5.5); trim in case the
  // caller did not.
  header = TrimOws(header);
  const std::size_t equals = header.find('=');
  if (equals == std::string_view::npos) return {};
  if (!IsBytesUnit(header.substr(0, equals))) return {};  // unknown unit: ignore

  RangeDecision decision;
  std::size_t spec_count = 0;
  std::string_view rest = header.substr(equals + 1);
  while (true) {
    const std::size_t comma = rest.find(',');
    const std::string_view element = TrimOws(rest.substr(0, comma));
    if (!element.empty()) {  // the list rule lets recipients skip empty elements
      // Counting syntactic ranges, not satisfiable ones, stops "bytes=0-0,0-0,..." early.
      if (++spec_count > limits.max_ranges) return {};
      const std::optional<RangeSpec> spec = ParseRangeSpec(element);
      if (!spec) return {};
      if (const std::optional<ByteRange> range = Satisfy(*spec, length)) {
        decision.ranges.push_back(*range);
      }
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }

  if (spec_count == 0) return {};  // "bytes=" or "bytes=,,": range-set needs one element
  if (decision.ranges.empty()) {
    decision.outcome = RangeOutcome::kUnsatisfiable;
    return decision;
  }
  if (decision.ranges.size() > 1) Coalesce(decision.ranges);
  decision.outcome = RangeOutcome::kPartial;
  return decision;
}

}  // namespace plyr::streamer
