#include "common/media/chromaprint.h"

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
