#include "transcoder/true_peak.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

namespace plyr::transcoder {
namespace {

// A sine at a quarter of the sample rate, sampled 45 degrees off its crests: every sample sits
// at 0.707 of the amplitude, so the sample peak is 3 dB under the true peak.
std::vector<float> QuarterRateSine(float amplitude, int frames, int channels) {
  std::vector<float> out;
  for (int i = 0; i < frames; ++i) {
    const float v = amplitude * static_cast<float>(std::sin(M_PI / 2 * i + M_PI / 4));
    for (int c = 0; c < channels; ++c) out.push_back(c == 0 ? v : v * 0.5f);
  }
  return out;
}

TEST(TruePeakMeter, FindsThePeakBetweenSamples) {
  const auto signal = QuarterRateSine(0.9f, 48000, 2);
  TruePeakMeter meter(2);
  meter.Add(signal.data(), 48000);
  float sample_peak = 0;
  for (float v : signal) sample_peak = std::max(sample_peak, std::fabs(v));
  EXPECT_NEAR(sample_peak, 0.9f * std::sqrt(0.5f), 1e-4);
  EXPECT_NEAR(20 * std::log10(meter.peak()), 20 * std::log10(0.9), 0.1);  // within 0.1 dB of the crest
}

TEST(TruePeakMeter, ChunkingDoesNotChangeTheResult) {
  const auto signal = QuarterRateSine(0.5f, 9000, 1);
  TruePeakMeter whole(1), pieces(1);
  whole.Add(signal.data(), 9000);
  for (int i = 0; i < 9000; i += 37) pieces.Add(signal.data() + i, std::min(37, 9000 - i));
  EXPECT_FLOAT_EQ(whole.peak(), pieces.peak());
}

TEST(TruePeakMeter, AConstantReadsAsItselfAndSilenceAsZero) {
  // Faded in: a step from silence rings above itself, as a real one would on a speaker.
  std::vector<float> constant(4800, -0.25f), silence(4800, 0.0f);
  for (int i = 0; i < 1000; ++i) constant[i] = -0.25f * static_cast<float>(0.5 - 0.5 * std::cos(M_PI * i / 1000));
  TruePeakMeter a(1), b(1);
  a.Add(constant.data(), 4800);
  b.Add(silence.data(), 4800);
  EXPECT_NEAR(a.peak(), 0.25f, 1e-4);
  EXPECT_EQ(b.peak(), 0.0f);
}

TEST(TruePeakMeter, ALoudBurstAfterQuietIsNotSkipped) {
  std::vector<float> signal(48000, 0.001f);
  const auto burst = QuarterRateSine(0.8f, 64, 1);
  std::copy(burst.begin(), burst.end(), signal.begin() + 30000);
  TruePeakMeter meter(1);
  meter.Add(signal.data(), 48000);
  EXPECT_GT(meter.peak(), 0.8f * std::sqrt(0.5f) * 1.2f);  // above the burst's sample peak
}

}  // namespace
}  // namespace plyr::transcoder
