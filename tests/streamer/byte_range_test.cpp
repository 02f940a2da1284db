// Tests for ResolveRange (streamer/byte_range.h): RFC 9110 section 14 Range handling.

#include "streamer/byte_range.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace plyr::streamer {

// Readable failure messages; found by ADL.
void PrintTo(const ByteRange& r, std::ostream* os) {
  *os << "{first=" << r.first << ", length=" << r.length << "}";
}
void PrintTo(RangeOutcome o, std::ostream* os) {
  switch (o) {
    case RangeOutcome::kIgnore: *os << "kIgnore"; return;
    case RangeOutcome::kPartial: *os << "kPartial"; return;
    case RangeOutcome::kUnsatisfiable: *os << "kUnsatisfiable"; return;
  }
  *os << "RangeOutcome(" << static_cast<int>(o) << ")";
}

namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

// Asserts kPartial with exactly `expected`.
void ExpectPartial(std::string_view header, std::uint64_t length,
                   const std::vector<ByteRange>& expected, const RangeLimits& limits = {}) {
  SCOPED_TRACE(testing::Message() << "header=\"" << header << "\" length=" << length);
  const RangeDecision d = ResolveRange(header, length, limits);
  EXPECT_EQ(d.outcome, RangeOutcome::kPartial);
  EXPECT_EQ(d.ranges, expected);
}

void ExpectIgnore(std::string_view header, std::uint64_t length = 1000,
                  const RangeLimits& limits = {}) {
  SCOPED_TRACE(testing::Message() << "header=\"" << header << "\" length=" << length);
  const RangeDecision d = ResolveRange(header, length, limits);
  EXPECT_EQ(d.outcome, RangeOutcome::kIgnore);
  EXPECT_TRUE(d.ranges.empty());
}

void ExpectUnsatisfiable(std::string_view header, std::uint64_t length,
                         const RangeLimits& limits = {}) {
  SCOPED_TRACE(testing::Message() << "header=\"" << header << "\" length=" << length);
  const RangeDecision d = ResolveRange(header, length, limits);
  EXPECT_EQ(d.outcome, RangeOutcome::kUnsatisfiable);
  EXPECT_TRUE(d.ranges.empty());
}

// "bytes=" followed by `count` copies of `spec` separated by commas.
std::string RepeatedRanges(std::string_view spec, std::size_t count) {
  std::string header = "bytes=";
  for (std::size_t i = 0; i < count; ++i) {
    if (i != 0) header += ',';
    header += spec;
  }
  return header;
}

// --- ByteRange ----------------------------------------------------------------------------

TEST(ByteRangeTest, LastIsInclusiveEnd) {
  EXPECT_EQ((ByteRange{0, 2}.last()), 1u);
  EXPECT_EQ((ByteRange{9, 1}.last()), 9u);
  EXPECT_EQ((ByteRange{0, kMax}.last()), kMax - 1);
}

// --- Single ranges ------------------------------------------------------------------------

TEST(ResolveRangeTest, FirstTwoBytes) { ExpectPartial("bytes=0-1", 100, {{0, 2}}); }

TEST(ResolveRangeTest, SingleByte) {
  ExpectPartial("bytes=0-0", 100, {{0, 1}});
  ExpectPartial("bytes=99-99", 100, {{99, 1}});
  ExpectPartial("bytes=0-0", 1, {{0, 1}});
}

TEST(ResolveRangeTest, RangeInTheMiddleReturnedAsAsked) {
  ExpectPartial("bytes=10-19", 100, {{10, 10}});
  ExpectPartial("bytes=500-999", 10000, {{500, 500}});
}

TEST(ResolveRangeTest, OpenEndedFromZeroIsWholeRepresentation) {
  ExpectPartial("bytes=0-", 100, {{0, 100}});
  ExpectPartial("bytes=0-", 1, {{0, 1}});
}

TEST(ResolveRangeTest, OpenEndedFromOffset) {
  ExpectPartial("bytes=40-", 100, {{40, 60}});
  ExpectPartial("bytes=99-", 100, {{99, 1}});
}

TEST(ResolveRangeTest, Suffix) {
  ExpectPartial("bytes=-500", 10000, {{9500, 500}});
  ExpectPartial("bytes=-1", 100, {{99, 1}});
  ExpectPartial("bytes=-100", 100, {{0, 100}});
}

TEST(ResolveRangeTest, SuffixLongerThanLengthIsWholeRepresentation) {
  ExpectPartial("bytes=-500", 100, {{0, 100}});
  ExpectPartial("bytes=-18446744073709551615", 10, {{0, 10}});
}

TEST(ResolveRangeTest, EndPastEofIsClamped) {
  ExpectPartial("bytes=50-1000", 100, {{50, 50}});
  ExpectPartial("bytes=0-100", 100, {{0, 100}});
  ExpectPartial("bytes=99-100000", 100, {{99, 1}});
  ExpectPartial("bytes=0-18446744073709551615", 100, {{0, 100}});
}

TEST(ResolveRangeTest, LeadingZerosAreDigits) {
  ExpectPartial("bytes=000-001", 100, {{0, 2}});
  ExpectPartial("bytes=-0005", 100, {{95, 5}});
}

TEST(ResolveRangeTest, HugeRepresentationLength) {
  ExpectPartial("bytes=0-", kMax, {{0, kMax}});
  ExpectPartial("bytes=-1", kMax, {{kMax - 1, 1}});
  ExpectPartial("bytes=18446744073709551614-", kMax, {{kMax - 1, 1}});
  ExpectPartial("bytes=0-18446744073709551615", kMax, {{0, kMax}});
  ExpectUnsatisfiable("bytes=18446744073709551615-", kMax);
}

// --- Unsatisfiable ------------------------------------------------------------------------

TEST(ResolveRangeTest, StartAtLengthIsUnsatisfiable) {
  ExpectUnsatisfiable("bytes=100-", 100);
  ExpectUnsatisfiable("bytes=100-100", 100);
  ExpectUnsatisfiable("bytes=100-200", 100);
}

TEST(ResolveRangeTest, StartPastLengthIsUnsatisfiable) {
  ExpectUnsatisfiable("bytes=500-", 100);
  ExpectUnsatisfiable("bytes=500-600", 100);
}

TEST(ResolveRangeTest, MaxStartOnSmallFileIsUnsatisfiable) {
  ExpectUnsatisfiable("bytes=18446744073709551615-", 10);
  ExpectUnsatisfiable("bytes=18446744073709551615-18446744073709551615", 10);
}

TEST(ResolveRangeTest, AllMembersUnsatisfiable) {
  ExpectUnsatisfiable("bytes=200-300,100-", 100);
  ExpectUnsatisfiable("bytes=100-100, 150-", 100);
}

TEST(ResolveRangeTest, ZeroLengthRepresentation) {
  ExpectUnsatisfiable("bytes=0-0", 0);
  ExpectUnsatisfiable("bytes=0-", 0);
  ExpectUnsatisfiable("bytes=0-100", 0);
  ExpectUnsatisfiable("bytes=-1", 0);
  ExpectUnsatisfiable("bytes=-500", 0);
  ExpectUnsatisfiable("bytes=0-0,-1", 0);
  // Invalid headers stay invalid whatever the length.
  ExpectIgnore("bytes=5-1", 0);
  ExpectIgnore("bytes=-0", 0);
  ExpectIgnore("bytes=", 0);
}

TEST(ResolveRangeTest, UnsatisfiableMemberDroppedWhenAnotherIsSatisfiable) {
  ExpectPartial("bytes=0-1,500-600", 100, {{0, 2}});
  ExpectPartial("bytes=500-,-5", 100, {{95, 5}});
  ExpectPartial("bytes=100-,0-0,200-300,99-", 100, {{0, 1}, {99, 1}});
}

// --- Invalid ranges -----------------------------------------------------------------------

TEST(ResolveRangeTest, FirstGreaterThanLastIsIgnored) {
  ExpectIgnore("bytes=5-1");
  ExpectIgnore("bytes=1-0");
  // One invalid member poisons the whole header.
  ExpectIgnore("bytes=0-1,5-1");
  ExpectIgnore("bytes=5-1,0-1");
}

TEST(ResolveRangeTest, SuffixZeroIsIgnored) {
  ExpectIgnore("bytes=-0");
  ExpectIgnore("bytes=-000");
  ExpectIgnore("bytes=0-1,-0");
}

TEST(ResolveRangeTest, HugeNumbersAreIgnored) {
  ExpectIgnore("bytes=99999999999999999999-");
  ExpectIgnore("bytes=0-99999999999999999999");
  ExpectIgnore("bytes=-99999999999999999999");
  ExpectIgnore("bytes=" + std::string(100, '9') + "-");
  ExpectIgnore("bytes=0-" + std::string(300, '7'));
}

TEST(ResolveRangeTest, TwentyDigitOverflowIsIgnored) {
  // UINT64_MAX + 1: one past the largest value that fits.
  ExpectIgnore("bytes=18446744073709551616-");
  ExpectIgnore("bytes=0-18446744073709551616");
  ExpectIgnore("bytes=-18446744073709551616");
  ExpectIgnore("bytes=0-1,18446744073709551616-");
}

TEST(ResolveRangeTest, NumbersMustBeDigitsOnly) {
  ExpectIgnore("bytes=+1-2");
  ExpectIgnore("bytes=1-+2");
  ExpectIgnore("bytes=-+5");
  ExpectIgnore("bytes=--5");
  ExpectIgnore("bytes=0x10-0x20");
  ExpectIgnore("bytes=0-0x20");
  ExpectIgnore("bytes=1e3-");
  ExpectIgnore("bytes=1.5-2");
  ExpectIgnore("bytes=1 0-20");
  ExpectIgnore("bytes=10-2 0");
  ExpectIgnore("bytes=1 -2");
  ExpectIgnore("bytes=1- 2");
  ExpectIgnore("bytes=- 5");
  ExpectIgnore("bytes=a-b");
  ExpectIgnore("bytes=1-2a");
  ExpectIgnore("bytes=\xd9\xa1-\xd9\xa2");  // Arabic-Indic digits
}

TEST(ResolveRangeTest, GarbageIsIgnored) {
  for (std::string_view header : {
           "",
           " ",
           "garbage",
           "bytes",
           "bytes=",
           "bytes=,",
           "bytes= , ,",
           "bytes=-",
           "bytes=1--2",
           "bytes=1-2-3",
           "bytes=0-1;",
           "bytes=0-1 2-3",
           "bytes=0-1;2-3",
           "bytes=0-1,x",
           "bytes==0-1",
           "bytes=0=1",
           "=0-1",
           "=",
           "-",
           ",",
           "bytes 0-1",
           "bytes:0-1",
           "bytes=\xff\xfe",
           "\x80\x81\x82=0-1",
       }) {
    ExpectIgnore(header);
  }
}

TEST(ResolveRangeTest, MissingBytesPrefixIsIgnored) {
  ExpectIgnore("0-499");
  ExpectIgnore("-500");
  ExpectIgnore("0-");
}

TEST(ResolveRangeTest, UnknownUnitIsIgnored) {
  ExpectIgnore("items=0-1");
  ExpectIgnore("byte=0-1");
  ExpectIgnore("bytesx=0-1");
  ExpectIgnore("xbytes=0-1");
  ExpectIgnore("none=0-1");
  ExpectIgnore("bits=0-1");
}

TEST(ResolveRangeTest, UnitIsCaseInsensitive) {
  ExpectPartial("BYTES=0-1", 100, {{0, 2}});
  ExpectPartial("Bytes=0-1", 100, {{0, 2}});
  ExpectPartial("bYtEs=-1", 100, {{99, 1}});
}

TEST(ResolveRangeTest, EmbeddedNulIsIgnored) {
  using namespace std::string_view_literals;
  ExpectIgnore("bytes=0-1\0"sv);
  ExpectIgnore("bytes=0\0-1"sv);
  ExpectIgnore("bytes=0-\0"sv);
  ExpectIgnore("bytes\0=0-1"sv);
  ExpectIgnore("\0bytes=0-1"sv);
  ExpectIgnore("bytes=0-1,\0"sv);
  ExpectIgnore("bytes=0-1,\0,2-3"sv);
  ExpectIgnore("bytes=\0"sv);
}

// --- Whitespace and list syntax -----------------------------------------------------------

TEST(ResolveRangeTest, OwsAroundCommas) {
  const std::vector<ByteRange> expected = {{0, 2}, {10, 2}};
  ExpectPartial("bytes=0-1,10-11", 100, expected);
  ExpectPartial("bytes=0-1, 10-11", 100, expected);
  ExpectPartial("bytes=0-1 ,10-11", 100, expected);
  ExpectPartial("bytes=0-1 , 10-11", 100, expected);
  ExpectPartial("bytes=0-1\t,\t10-11", 100, expected);
  ExpectPartial("bytes=0-1  ,   10-11", 100, expected);
}

TEST(ResolveRangeTest, SurroundingWhitespace) {
  // The field value is trimmed, as an HTTP parser would have done.
  ExpectPartial(" bytes=0-1", 100, {{0, 2}});
  ExpectPartial("bytes=0-1 ", 100, {{0, 2}});
  ExpectPartial("\tbytes=0-1\t", 100, {{0, 2}});
  // Leniency: OWS at the start of the range-set, as accepted by common servers.
  ExpectPartial("bytes= 0-1", 100, {{0, 2}});
}

TEST(ResolveRangeTest, WhitespaceWhereGrammarHasNone) {
  ExpectIgnore("bytes =0-1");
  ExpectIgnore("bytes = 0-1");
  ExpectIgnore("by tes=0-1");
  ExpectIgnore("bytes=0 -1");
  ExpectIgnore("bytes=0- 1");
  // Only SP and HTAB are OWS.
  ExpectIgnore("bytes=0-1,\n10-11");
  ExpectIgnore("bytes=0-1\r\n");
  ExpectIgnore("bytes=0-1,\v10-11");
}

TEST(ResolveRangeTest, EmptyListElementsTolerated) {
  const std::vector<ByteRange> expected = {{0, 2}, {10, 2}};
  ExpectPartial("bytes=0-1,,10-11", 100, expected);
  ExpectPartial("bytes=,0-1,10-11", 100, expected);
  ExpectPartial("bytes=0-1,10-11,", 100, expected);
  ExpectPartial("bytes=,,0-1, ,\t,10-11,,", 100, expected);
  ExpectPartial("bytes=0-1,", 100, {{0, 2}});
}

// --- Several ranges -----------------------------------------------------------------------

TEST(ResolveRangeTest, TwoDisjointRangesAscending) {
  ExpectPartial("bytes=0-99,500-599", 1000, {{0, 100}, {500, 100}});
  // Requested out of order, returned ascending.
  ExpectPartial("bytes=500-599,0-99", 1000, {{0, 100}, {500, 100}});
}

TEST(ResolveRangeTest, FirstByteAndSuffixByte) {
  ExpectPartial("bytes=0-0,-1", 10, {{0, 1}, {9, 1}});
  ExpectPartial("bytes=-1,0-0", 10, {{0, 1}, {9, 1}});
}

TEST(ResolveRangeTest, OverlappingRangesCoalesced) {
  ExpectPartial("bytes=0-99,50-149", 1000, {{0, 150}});
  ExpectPartial("bytes=50-149,0-99", 1000, {{0, 150}});
  ExpectPartial("bytes=0-999,10-20", 1000, {{0, 1000}});  // contained
  ExpectPartial("bytes=10-20,0-999", 1000, {{0, 1000}});
  ExpectPartial("bytes=0-0,0-0", 1000, {{0, 1}});          // duplicates
  ExpectPartial("bytes=-10,95-", 100, {{90, 10}});        // suffix and open-ended
  ExpectPartial("bytes=0-,-1", 100, {{0, 100}});
}

TEST(ResolveRangeTest, AdjacentRangesCoalesced) {
  ExpectPartial("bytes=0-99,100-199", 1000, {{0, 200}});
  ExpectPartial("bytes=0-1,2-3", 100, {{0, 4}});
  ExpectPartial("bytes=-1,0-98", 100, {{0, 100}});
  // A one-byte gap is not adjacent.
  ExpectPartial("bytes=0-1,3-4", 100, {{0, 2}, {3, 2}});
}

TEST(ResolveRangeTest, ClampedRangesCoalesced) {
  // Both end at the clamp, so they overlap only after resolution.
  ExpectPartial("bytes=90-500,95-600", 100, {{90, 10}});
}

TEST(ResolveRangeTest, MixedCoalescing) {
  ExpectPartial("bytes=500-599,0-9,10-19,550-650,900-", 1000,
                {{0, 20}, {500, 151}, {900, 100}});
  ExpectPartial("bytes=0-0,2-2,4-4,1-1,3-3", 10, {{0, 5}});
}

TEST(ResolveRangeTest, CoalescingNearMaxLength) {
  ExpectPartial("bytes=0-5,6-", kMax, {{0, kMax}});
  ExpectPartial("bytes=-1,-2", kMax, {{kMax - 2, 2}});
}

// --- Limits -------------------------------------------------------------------------------

TEST(ResolveRangeTest, ThousandRangesIgnored) {
  const std::string header = RepeatedRanges("0-0", 1000);
  ExpectIgnore(header, 1000);
  // Also when the header size limit is out of the way: the range count alone rejects it,
  // even though all of them would coalesce into one.
  RangeLimits roomy;
  roomy.max_header_bytes = 1 << 20;
  ExpectIgnore(header, 1000, roomy);
  ExpectIgnore(RepeatedRanges("5000-", 1000), 1000, roomy);  // all unsatisfiable
}

TEST(ResolveRangeTest, RangeCountAtLimit) {
  const RangeLimits limits;  // max_ranges = 8
  ExpectPartial("bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14", 100,
                {{0, 1}, {2, 1}, {4, 1}, {6, 1}, {8, 1}, {10, 1}, {12, 1}, {14, 1}}, limits);
  ExpectIgnore("bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16", 100, limits);
}

TEST(ResolveRangeTest, RangeCountIsSyntacticBeforeCoalescing) {
  // Nine ranges that would coalesce to one are still nine ranges.
  ExpectIgnore(RepeatedRanges("0-0", 9), 100);
  // Unsatisfiable members count too.
  ExpectIgnore("bytes=0-0,200-,201-,202-,203-,204-,205-,206-,207-", 100);
}

TEST(ResolveRangeTest, EmptyElementsDoNotCountAsRanges) {
  RangeLimits limits;
  limits.max_ranges = 2;
  ExpectPartial("bytes=0-0,,,,,,,,,,,,4-4", 100, {{0, 1}, {4, 1}}, limits);
  ExpectIgnore("bytes=0-0,2-2,4-4", 100, limits);
}

TEST(ResolveRangeTest, CustomMaxRanges) {
  RangeLimits one;
  one.max_ranges = 1;
  ExpectPartial("bytes=0-1", 100, {{0, 2}}, one);
  ExpectIgnore("bytes=0-1,5-6", 100, one);
  RangeLimits none;
  none.max_ranges = 0;
  ExpectIgnore("bytes=0-1", 100, none);
}

TEST(ResolveRangeTest, HeaderOf2000BytesIgnored) {
  // A valid header made long with leading zeros: only its size rejects it.
  const std::string header = "bytes=" + std::string(1988, '0') + "-1,5-6";
  ASSERT_EQ(header.size(), 2000u);
  ExpectIgnore(header, 100);
  RangeLimits roomy;
  roomy.max_header_bytes = 4096;
  ExpectPartial(header, 100, {{0, 2}, {5, 2}}, roomy);
  // Long garbage is ignored just the same.
  ExpectIgnore(std::string(2000, 'x'), 100);
  ExpectIgnore(std::string(2000, ','), 100);
}

TEST(ResolveRangeTest, HeaderSizeLimitBoundary) {
  RangeLimits limits;
  limits.max_header_bytes = 9;
  ExpectPartial("bytes=0-1", 100, {{0, 2}}, limits);  // exactly 9 bytes
  ExpectIgnore("bytes=0-10", 100, limits);             // 10 bytes
  // Surrounding whitespace counts toward the limit: it is checked before any parsing.
  ExpectIgnore(" bytes=0-1", 100, limits);
}

// --- Properties ---------------------------------------------------------------------------

// Random headers built from the characters that matter: whatever the input, the result must
// be well formed, and a partial answer must be sorted, disjoint, non-adjacent and in bounds.
TEST(ResolveRangeTest, RandomHeadersKeepInvariants) {
  using namespace std::string_view_literals;
  constexpr std::string_view kAlphabet = "bytes=BYTES-,0123456789 \t\0x"sv;  // includes NUL
  std::mt19937_64 rng(12345);
  std::uniform_int_distribution<std::size_t> pick(0, kAlphabet.size() - 1);
  std::uniform_int_distribution<std::size_t> size(0, 40);
  const std::uint64_t lengths[] = {0, 1, 2, 10, 100, 12345, kMax};
  for (int i = 0; i < 20000; ++i) {
    std::string header = (i % 2 == 0) ? "bytes=" : "";
    for (std::size_t n = size(rng); n > 0; --n) header += kAlphabet[pick(rng)];
    for (std::uint64_t length : lengths) {
      const RangeDecision d = ResolveRange(header, length);
      SCOPED_TRACE(testing::Message() << "header=\"" << header << "\" length=" << length);
      if (d.outcome != RangeOutcome::kPartial) {
        ASSERT_TRUE(d.ranges.empty());
        continue;
      }
      ASSERT_FALSE(d.ranges.empty());
      ASSERT_LE(d.ranges.size(), RangeLimits{}.max_ranges);
      for (std::size_t k = 0; k < d.ranges.size(); ++k) {
        const ByteRange& r = d.ranges[k];
        ASSERT_GT(r.length, 0u);
        ASSERT_LT(r.first, length);
        ASSERT_LE(r.length, length - r.first);
        if (k > 0) {
          ASSERT_GT(r.first, d.ranges[k - 1].last() + 1);
        }
      }
    }
  }
}

}  // namespace
}  // namespace plyr::streamer
