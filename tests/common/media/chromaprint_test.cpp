#include "common/media/chromaprint.h"

#include <chromaprint.h>

#include <bit>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace plyr::media {
namespace {

// A few seconds of a two-voice melody, 11025 Hz mono.
std::vector<std::int16_t> Melody(double seconds, int seed) {
  std::vector<std::int16_t> out(static_cast<std::size_t>(seconds * kChromaprintRate));
  std::mt19937 rng(seed);
  double phase1 = 0, phase2 = 0, f1 = 220, f2 = 110;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i % 3000 == 0) f1 = 220 * std::pow(2.0, static_cast<double>(rng() % 24) / 12);
    if (i % 7000 == 0) f2 = 110 * std::pow(2.0, static_cast<double>(rng() % 12) / 12);
    phase1 += 2 * M_PI * f1 / kChromaprintRate;
    phase2 += 2 * M_PI * f2 / kChromaprintRate;
    out[i] = static_cast<std::int16_t>(9000 * std::sin(phase1) + 5000 * std::sin(phase2));
  }
  return out;
}

TEST(ChromaprintTest, ItemsAtAboutEightPerSecondAndSpeedVariantsScaleTheirCount) {
  Fingerprinter fingerprinter({1.0, 1.05});
  ASSERT_TRUE(fingerprinter.Start(kChromaprintRate, 1).ok());
  auto audio = Melody(30, 1);
  ASSERT_TRUE(fingerprinter.Feed(audio).ok());
  auto prints = fingerprinter.Finish();
  ASSERT_TRUE(prints.ok());
  ASSERT_EQ(prints->size(), 2u);
  // n = (30 s - 2.6 s) / 0.1238 s ≈ 221 items.
  EXPECT_NEAR(static_cast<double>((*prints)[0].size()), 221, 3);
  // Undoing a 5 % speed-up stretches the audio by 5 %: about 5 % more items.
  EXPECT_NEAR(static_cast<double>((*prints)[1].size()), (30 * 1.05 - 2.6) / kItemSeconds, 4);
}

// The items Chromaprint makes when it resamples the audio itself, declared at `rate`.
FingerprintItems ChromaprintOwnResampling(const std::vector<std::int16_t>& audio, int rate) {
  ChromaprintContext* context = chromaprint_new(CHROMAPRINT_ALGORITHM_TEST2);
  chromaprint_start(context, rate, 1);
  chromaprint_feed(context, audio.data(), static_cast<int>(audio.size()));
  chromaprint_finish(context);
  std::uint32_t* raw = nullptr;
  int size = 0;
  chromaprint_get_raw_fingerprint(context, &raw, &size);
  FingerprintItems items(raw, raw + size);
  chromaprint_dealloc(raw);
  chromaprint_free(context);
  return items;
}

double BitErrorRate(const FingerprintItems& a, const FingerprintItems& b) {
  const std::size_t n = std::min(a.size(), b.size());
  std::size_t bits = 0;
  for (std::size_t i = 0; i < n; ++i) bits += static_cast<std::size_t>(std::popcount(a[i] ^ b[i]));
  return n == 0 ? 1.0 : static_cast<double>(bits) / (32.0 * static_cast<double>(n));
}

TEST(ChromaprintTest, ASpeedVariantHasTheItemsChromaprintsOwnResamplerGives) {
  const auto audio = Melody(40, 2);
  for (double speed : {0.95, 1.02}) {
    Fingerprinter fingerprinter({speed});
    ASSERT_TRUE(fingerprinter.Start(kChromaprintRate, 1).ok());
    // Uneven pieces: the resampler keeps its state between them.
    for (std::size_t at = 0; at < audio.size(); at += 777) {
      const std::size_t n = std::min<std::size_t>(777, audio.size() - at);
      ASSERT_TRUE(fingerprinter.Feed({audio.data() + at, n}).ok());
    }
    auto prints = fingerprinter.Finish();
    ASSERT_TRUE(prints.ok());
    const auto expected = ChromaprintOwnResampling(audio, static_cast<int>(std::lround(kChromaprintRate / speed)));
    const auto& items = (*prints)[0];
    EXPECT_NEAR(static_cast<double>(items.size()), static_cast<double>(expected.size()), 1) << speed;
    EXPECT_LT(BitErrorRate(items, expected), 0.01) << speed;
  }
}

TEST(ChromaprintTest, APartialSampleFrameIsRefused) {
  Fingerprinter fingerprinter({1.0, 1.02});
  ASSERT_TRUE(fingerprinter.Start(44100, 2).ok());
  const std::vector<std::int16_t> odd(1001, 0);
  EXPECT_EQ(fingerprinter.Feed(odd).code(), StatusCode::kInvalidArgument);
}

TEST(ChromaprintTest, SpeedListsParseWithOneFirstAndRefuseNonsense) {
  auto speeds = ParseSpeedList("1,0.98,1.02");
  ASSERT_TRUE(speeds.ok()) << speeds.status().ToString();
  EXPECT_EQ(*speeds, (std::vector<double>{1.0, 0.98, 1.02}));
  EXPECT_EQ(SpeedListText(*speeds), "1,0.98,1.02");
  for (const char* same : {"0.98, 1.02", "0.98,1,1.02", "0.98,1.00,1.02"}) {
    auto parsed = ParseSpeedList(same);
    ASSERT_TRUE(parsed.ok()) << same << ": " << parsed.status().ToString();
    EXPECT_EQ(*parsed, (std::vector<double>{1.0, 0.98, 1.02})) << same;
  }
  auto only_one = ParseSpeedList("");
  ASSERT_TRUE(only_one.ok());
  EXPECT_EQ(*only_one, std::vector<double>{1.0});
  auto edges = ParseSpeedList("0.8,1.25");
  ASSERT_TRUE(edges.ok());
  EXPECT_EQ(*edges, (std::vector<double>{1.0, 0.8, 1.25}));
  for (const char* bad : {"0.79", "1.26", "x", "1,1", "0.98,0.98", "nan", "inf", "1.02x", "-1",
                          "0.9,0.91,0.92,0.93,0.94,0.95,0.96,0.97"}) {
    auto parsed = ParseSpeedList(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(ChromaprintTest, CompressedFormRoundTrips) {
  Fingerprinter fingerprinter;
  ASSERT_TRUE(fingerprinter.Start(kChromaprintRate, 1).ok());
  ASSERT_TRUE(fingerprinter.Feed(Melody(12, 2)).ok());
  auto prints = fingerprinter.Finish();
  ASSERT_TRUE(prints.ok());
  const auto& items = (*prints)[0];
  const std::string text = EncodeFingerprint(items);
  EXPECT_EQ(text.substr(0, 4), "AQAA");  // algorithm 1 (TEST2), as fpcalc prints
  auto decoded = DecodeFingerprint(text, 100000);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, items);
}

TEST(ChromaprintTest, AudioShorterThanTheFirstItemGivesNoItems) {
  Fingerprinter fingerprinter;
  ASSERT_TRUE(fingerprinter.Start(kChromaprintRate, 1).ok());
  ASSERT_TRUE(fingerprinter.Feed(Melody(1, 3)).ok());
  auto prints = fingerprinter.Finish();
  ASSERT_TRUE(prints.ok());
  EXPECT_TRUE((*prints)[0].empty());
}

TEST(ChromaprintTest, TheShortestFingerprintsRoundTrip) {
  // One item encodes to 7 characters (found by fuzz/fingerprint_string_fuzz: a minimum length
  // of 8 refused it).
  for (const FingerprintItems& items : {FingerprintItems{0}, FingerprintItems{0xFFFFFFFFu}, FingerprintItems{1, 2}}) {
    const std::string text = EncodeFingerprint(items);
    auto decoded = DecodeFingerprint(text, 100);
    ASSERT_TRUE(decoded.ok()) << text << ": " << decoded.status().ToString();
    EXPECT_EQ(*decoded, items) << text;
  }
}

TEST(ChromaprintTest, OurDecoderReadsWhatChromaprintsDoes) {
  std::mt19937 rng(9);
  for (int round = 0; round < 200; ++round) {
    FingerprintItems items(1 + rng() % 300);
    for (auto& item : items) item = round % 3 == 0 ? (rng() & rng()) : static_cast<std::uint32_t>(rng());
    if (round % 5 == 0) items[0] = 0x80000001u;  // gaps of 32: exceptional codes
    const std::string text = EncodeFingerprint(items);
    auto ours = DecodeFingerprint(text, 1000);
    ASSERT_TRUE(ours.ok()) << ours.status().ToString();
    std::uint32_t* raw = nullptr;
    int size = 0, algorithm = 0;
    ASSERT_EQ(chromaprint_decode_fingerprint(text.data(), static_cast<int>(text.size()), &raw, &size, &algorithm, 1), 1);
    EXPECT_EQ(*ours, FingerprintItems(raw, raw + size));
    EXPECT_EQ(*ours, items);
    chromaprint_dealloc(raw);
  }
  // The input on which libchromaprint 1.5.1 reads out of bounds (found by the fuzzer): refused.
  EXPECT_FALSE(DecodeFingerprint("AQAAEAAA_____AQAAEAA______________-NJ__HJ", 1000).ok());
}

TEST(ChromaprintTest, DecodeRefusesWhatIsNotAFingerprint) {
  for (const char* bad : {"", "AQAA", "not a fingerprint at all!", "AQAAAAAAAAAAAAAA====", "////////////////"}) {
    auto r = DecodeFingerprint(bad, 100000);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
  // A count over the limit is refused before anything is allocated.
  std::vector<std::uint32_t> items(1000, 0x12345678);
  auto text = EncodeFingerprint(items);
  auto over = DecodeFingerprint(text, 999);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("limit"), std::string::npos);
  // Truncated text.
  EXPECT_FALSE(DecodeFingerprint(text.substr(0, text.size() / 2), 100000).ok());
}

TEST(ChromaprintTest, RandomTextNeverCrashesTheDecoder) {
  std::mt19937 rng(7);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const std::string valid = EncodeFingerprint(std::vector<std::uint32_t>(300, 0xDEADBEEF));
  for (int i = 0; i < 3000; ++i) {
    std::string text = i % 2 ? valid : std::string();
    const std::size_t n = rng() % 400;
    if (text.empty()) {
      for (std::size_t j = 0; j < n; ++j) text += alphabet[rng() % alphabet.size()];
    } else {
      for (std::size_t j = 0; j < 1 + rng() % 8; ++j) text[6 + rng() % (text.size() - 6)] = alphabet[rng() % alphabet.size()];
      text.resize(rng() % text.size() + 1);
    }
    auto r = DecodeFingerprint(text, 50000);
    if (r.ok()) {
      EXPECT_LE(r->size(), 50000u);
    }
  }
}

}  // namespace
}  // namespace plyr::media
