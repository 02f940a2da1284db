#include "fingerprint/matcher.h"

#include <random>

#include <gtest/gtest.h>

#include "fingerprint/reference_index.h"

namespace plyr::fingerprint {
namespace {

using media::FingerprintItems;
using media::kItemSeconds;

FingerprintItems RandomItems(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  FingerprintItems items(n);
  for (auto& item : items) item = rng();
  return items;
}

// Flips each bit with probability `ber`.
FingerprintItems Noisy(FingerprintItems items, double ber, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::bernoulli_distribution flip(ber);
  for (auto& item : items) {
    for (int b = 0; b < 32; ++b) {
      if (flip(rng)) item ^= 1u << b;
    }
  }
  return items;
}

FingerprintItems Slice(const FingerprintItems& items, std::size_t from, std::size_t n) {
  return FingerprintItems(items.begin() + static_cast<std::ptrdiff_t>(from),
                          items.begin() + static_cast<std::ptrdiff_t>(from + n));
}

MatchResult MatchOne(const ReferenceIndex& index, const FingerprintItems& query, MatchOptions options = {}) {
  const QueryVariant variant{1.0, query};
  return FindMatches(index, std::span(&variant, 1), options);
}

class MatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (std::uint64_t ref = 1; ref <= 20; ++ref) {
      works_[ref] = RandomItems(1500, static_cast<std::uint32_t>(ref));
      index_.Add(ref, works_[ref]);
    }
  }
  std::map<std::uint64_t, FingerprintItems> works_;
  ReferenceIndex index_;
};

TEST_F(MatcherTest, FindsANoisyExcerptAtItsOffset) {
  const auto query = Noisy(Slice(works_[7], 400, 59), 0.10, 1);
  auto result = MatchOne(index_, query);
  ASSERT_EQ(result.matches.size(), 1u);
  EXPECT_EQ(result.matches[0].ref, 7u);
  EXPECT_NEAR(result.matches[0].reference_offset_s, 400 * kItemSeconds, 0.2);
  EXPECT_NEAR(result.matches[0].score, 1 - 2 * 0.10, 0.05);
}

TEST_F(MatcherTest, UnrelatedItemsMatchNothing) {
  for (std::uint32_t seed = 100; seed < 120; ++seed) {
    auto result = MatchOne(index_, RandomItems(80, seed));
    EXPECT_TRUE(result.matches.empty()) << "seed " << seed;
  }
}

TEST_F(MatcherTest, ARejectedCandidateIsReportedOnlyWhenAsked) {
  const auto query = Noisy(Slice(works_[3], 100, 120), 0.23, 2);  // over the 0.20 threshold
  EXPECT_TRUE(MatchOne(index_, query).windows.empty());
  MatchOptions explain;
  explain.keep_rejected = true;
  auto result = MatchOne(index_, query, explain);
  EXPECT_TRUE(result.matches.empty());
  ASSERT_FALSE(result.windows.empty());
  EXPECT_FALSE(result.windows[0].accepted);
}

TEST_F(MatcherTest, SilenceAndDronesAreGuardedNotMatched) {
  // A reference that is silent for a while, and queries of that silence and of a held drone.
  FingerprintItems with_silence = RandomItems(300, 50);
  for (int i = 100; i < 200; ++i) with_silence[static_cast<std::size_t>(i)] = media::kSilenceItem;
  index_.Add(50, with_silence);
  FingerprintItems drone(300, 0x5A5A1234);
  index_.Add(51, drone);

  auto silent = MatchOne(index_, FingerprintItems(60, media::kSilenceItem));
  EXPECT_TRUE(silent.matches.empty());
  EXPECT_EQ(silent.guarded_windows, silent.window_count);
  auto drone_query = MatchOne(index_, Noisy(FingerprintItems(60, 0x5A5A1234), 0.02, 3));
  EXPECT_TRUE(drone_query.matches.empty());
  EXPECT_EQ(drone_query.guarded_windows, 1);
}

TEST_F(MatcherTest, AMixReturnsEachWorkWithItsOffsets) {
  FingerprintItems mix = Slice(works_[2], 200, 300);
  const auto second = Slice(works_[9], 700, 300);
  mix.insert(mix.end(), second.begin(), second.end());
  auto result = MatchOne(index_, Noisy(mix, 0.05, 4));
  ASSERT_EQ(result.matches.size(), 2u);
  EXPECT_EQ(result.matches[0].ref, 2u);
  EXPECT_NEAR(result.matches[0].query_offset_s, 0, 0.5);
  EXPECT_NEAR(result.matches[0].reference_offset_s, 200 * kItemSeconds, 0.5);
  EXPECT_EQ(result.matches[1].ref, 9u);
  EXPECT_NEAR(result.matches[1].query_offset_s, 300 * kItemSeconds, 6);  // window granularity
  EXPECT_NEAR(result.matches[1].reference_offset_s - result.matches[1].query_offset_s,
              700 * kItemSeconds - 300 * kItemSeconds, 0.5);
  EXPECT_GT(result.matches[0].duration_s, 30);
  EXPECT_GT(result.matches[1].duration_s, 30);
}

TEST_F(MatcherTest, FollowsATempoChange) {
  // 4 % faster: every 25th reference item is skipped.
  FingerprintItems query;
  for (std::size_t i = 500; query.size() < 120; ++i) {
    if (i % 25 != 0) query.push_back(works_[11][i]);
  }
  auto result = MatchOne(index_, Noisy(query, 0.05, 5));
  ASSERT_EQ(result.matches.size(), 1u);
  EXPECT_EQ(result.matches[0].ref, 11u);
  EXPECT_NEAR(result.matches[0].reference_offset_s, 500 * kItemSeconds, 0.5);
}

TEST_F(MatcherTest, ARemovedReferenceIsNoLongerFound) {
  const auto query = Slice(works_[5], 300, 59);
  ASSERT_EQ(MatchOne(index_, query).matches.size(), 1u);
  ASSERT_TRUE(index_.Remove(5));
  EXPECT_TRUE(MatchOne(index_, query).matches.empty());
  index_.Compact();
  EXPECT_TRUE(MatchOne(index_, query).matches.empty());
  EXPECT_FALSE(index_.Remove(5));
}

TEST(QueryWindowsTest, ShortQueriesAreOneWindowLongOnesOverlap) {
  MatchOptions o;
  EXPECT_TRUE(QueryWindows(30, o).empty());
  ASSERT_EQ(QueryWindows(59, o).size(), 1u);
  auto windows = QueryWindows(400, o);
  ASSERT_GE(windows.size(), 9u);
  EXPECT_EQ(windows.front().first, 0);
  EXPECT_EQ(windows.back().first + windows.back().second, 400);
}

TEST(ReferenceIndexTest, DeltaAndRebuiltBaseFindTheSamePositions) {
  ReferenceIndex index;
  const auto a = RandomItems(2000, 1);
  const auto b = RandomItems(2000, 2);
  index.Add(1, a);
  index.Add(2, b);
  auto count_hits = [&](const FingerprintItems& items) {
    auto reader = index.Read();
    std::size_t found = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      reader.ForEachPosting(index.KeyOf(items[i]), 1000, [&](std::uint32_t global) {
        const auto* span = reader.Locate(global);
        if (span && reader.Items(*span)[global - span->start] == items[i]) ++found;
      });
    }
    return found;
  };
  const std::size_t before = count_hits(b);
  EXPECT_GE(before, b.size());
  index.Compact();
  EXPECT_EQ(count_hits(b), before);
  index.Remove(1);
  index.Compact();  // drops reference 1's items: positions move
  EXPECT_EQ(count_hits(b), before);
  EXPECT_EQ(index.stats().references, 1u);
  EXPECT_EQ(index.stats().items, b.size());
  auto reader = index.Read();
  EXPECT_EQ(reader.Find(1), nullptr);
  ASSERT_NE(reader.Find(2), nullptr);
}

TEST(ReferenceIndexTest, AddingAnIdAgainReplacesIt) {
  ReferenceIndex index;
  index.Add(1, RandomItems(500, 1));
  index.Add(1, RandomItems(700, 2));
  EXPECT_EQ(index.stats().references, 1u);
  EXPECT_EQ(index.stats().items, 700u);
}

}  // namespace
}  // namespace plyr::fingerprint
