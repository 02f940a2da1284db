#include "common/media/test2_calculator.h"

#include <chromaprint.h>

#include <cmath>
#include <random>

#include <gtest/gtest.h>

namespace plyr::media {
namespace {

// What libchromaprint makes of 11025 Hz mono audio.
std::vector<std::uint32_t> Libchromaprint(const std::vector<std::int16_t>& audio) {
  ChromaprintContext* context = chromaprint_new(CHROMAPRINT_ALGORITHM_TEST2);
  chromaprint_start(context, 11025, 1);
  chromaprint_feed(context, audio.data(), static_cast<int>(audio.size()));
  chromaprint_finish(context);
  std::uint32_t* raw = nullptr;
  int size = 0;
  std::vector<std::uint32_t> items;
  if (chromaprint_get_raw_fingerprint(context, &raw, &size)) {
    items.assign(raw, raw + size);
    chromaprint_dealloc(raw);
  }
  chromaprint_free(context);
  return items;
}

std::vector<std::uint32_t> Ours(const std::vector<std::int16_t>& audio, std::size_t piece) {
  Test2Calculator calculator;
  for (std::size_t at = 0; at < audio.size(); at += piece) {
    calculator.Feed({audio.data() + at, std::min(piece, audio.size() - at)});
  }
  return calculator.Finish();
}

// Chords that change, over a bass line, with some noise and loudness that swells: music enough
// to exercise every classifier's four levels.
std::vector<std::int16_t> Music(double seconds, unsigned seed, double level) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0, 1);
  std::vector<std::int16_t> out(static_cast<std::size_t>(seconds * 11025));
  double phase[4] = {0, 0, 0, 0}, hz[4] = {220, 277, 330, 110};
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i % 2900 == 0) {
      const double root = 110 * std::pow(2.0, static_cast<double>(rng() % 12) / 12);
      hz[0] = root * 2;
      hz[1] = root * 2 * std::pow(2.0, (rng() % 2 ? 3.0 : 4.0) / 12);
      hz[2] = root * 3;
      hz[3] = root / (rng() % 2 ? 1 : 2);
    }
    double v = 0;
    for (int k = 0; k < 4; ++k) {
      phase[k] += 2 * M_PI * hz[k] / 11025;
      v += std::sin(phase[k]) / (k + 1);
    }
    const double swell = 0.6 + 0.4 * std::sin(static_cast<double>(i) / 20000.0);
    const double sample = level * (swell * v * 0.5 + 0.02 * noise(rng));
    out[i] = static_cast<std::int16_t>(std::clamp(sample * 32767, -32768.0, 32767.0));
  }
  return out;
}

TEST(Test2CalculatorTest, TheSameItemsAsLibchromaprint) {
  for (unsigned seed : {1u, 2u, 3u}) {
    for (double level : {1.0, 0.05}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " level " + std::to_string(level));
      const auto audio = Music(45, seed, level);
      const auto expected = Libchromaprint(audio);
      ASSERT_GT(expected.size(), 300u);
      EXPECT_EQ(Ours(audio, audio.size()), expected);
      EXPECT_EQ(Ours(audio, 1000), expected) << "fed in pieces";
    }
  }
}

TEST(Test2CalculatorTest, SilenceNoiseAndTheShortestInputsAsLibchromaprint) {
  std::mt19937 rng(4);
  std::vector<std::int16_t> noise(11025 * 10);
  for (auto& s : noise) s = static_cast<std::int16_t>(static_cast<int>(rng() % 65536) - 32768);
  const std::vector<std::int16_t> silence(11025 * 10, 0);
  EXPECT_EQ(Ours(noise, 4096), Libchromaprint(noise));
  EXPECT_EQ(Ours(silence, 4096), Libchromaprint(silence));
  // The first item needs 4096 + 19 x 1365 samples.
  const auto music = Music(3, 5, 1.0);
  for (std::size_t n : {0, 4095, 4096 + 19 * 1365 - 1, 4096 + 19 * 1365, 4096 + 20 * 1365}) {
    const std::vector<std::int16_t> cut(music.begin(), music.begin() + static_cast<std::ptrdiff_t>(n));
    const auto ours = Ours(cut, 1000);
    EXPECT_EQ(ours, Libchromaprint(cut)) << n;
    EXPECT_EQ(ours.size(), n < 4096 + 19 * 1365 ? 0u : (n - 4096) / 1365 + 1 - 19) << n;
  }
}

TEST(Test2CalculatorTest, FinishStartsAfresh) {
  const auto first = Music(20, 6, 1.0), second = Music(20, 7, 1.0);
  Test2Calculator calculator;
  calculator.Feed(first);
  EXPECT_EQ(calculator.Finish(), Libchromaprint(first));
  calculator.Feed(second);
  EXPECT_EQ(calculator.Finish(), Libchromaprint(second));
}

}  // namespace
}  // namespace plyr::media
