#include "transcoder/chromaprint_input.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/frame.h>
}

#include "common/media/chromaprint.h"

namespace plyr::transcoder {
namespace {

struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
using Frame = std::unique_ptr<AVFrame, FrameDeleter>;

// A frame of `samples` per channel in `format`, every channel carrying value(channel, i) in [-1, 1).
template <typename Value>
Frame MakeFrame(AVSampleFormat format, int rate, int channels, int samples, std::int64_t first, Value value) {
  Frame frame(av_frame_alloc());
  frame->format = format;
  frame->sample_rate = rate;
  frame->nb_samples = samples;
  av_channel_layout_default(&frame->ch_layout, channels);
  EXPECT_EQ(av_frame_get_buffer(frame.get(), 0), 0);
  const bool planar = av_sample_fmt_is_planar(format);
  for (int c = 0; c < channels; ++c) {
    for (int i = 0; i < samples; ++i) {
      const double v = value(c, first + i);
      const std::size_t at = planar ? static_cast<std::size_t>(i) : static_cast<std::size_t>(i) * channels + c;
      std::uint8_t* plane = frame->extended_data[planar ? c : 0];
      switch (av_get_packed_sample_fmt(format)) {
        case AV_SAMPLE_FMT_U8: plane[at] = static_cast<std::uint8_t>(std::lround(v * 127 + 128)); break;
        case AV_SAMPLE_FMT_S16: reinterpret_cast<std::int16_t*>(plane)[at] = static_cast<std::int16_t>(std::lround(v * 32767)); break;
        case AV_SAMPLE_FMT_S32: reinterpret_cast<std::int32_t*>(plane)[at] = static_cast<std::int32_t>(std::lround(v * 2147483647.0)); break;
        case AV_SAMPLE_FMT_S64: reinterpret_cast<std::int64_t*>(plane)[at] = static_cast<std::int64_t>(v * 9.2e18); break;
        case AV_SAMPLE_FMT_FLT: reinterpret_cast<float*>(plane)[at] = static_cast<float>(v); break;
        case AV_SAMPLE_FMT_DBL: reinterpret_cast<double*>(plane)[at] = v; break;
        default: ADD_FAILURE() << "format";
      }
    }
  }
  return frame;
}

// Runs `seconds` of a signal through a ChromaprintInput in frames of `frame_samples`.
template <typename Value>
std::vector<std::int16_t> Convert(AVSampleFormat format, int rate, int channels, double seconds, int frame_samples,
                                  Value value) {
  auto input = ChromaprintInput::Create(rate, format, channels);
  EXPECT_TRUE(input.ok()) << input.status().ToString();
  if (!input.ok()) return {};
  std::vector<std::int16_t> out;
  const auto total = static_cast<std::int64_t>(seconds * rate);
  for (std::int64_t at = 0; at < total; at += frame_samples) {
    const int n = static_cast<int>(std::min<std::int64_t>(frame_samples, total - at));
    input->Convert(*MakeFrame(format, rate, channels, n, at, value), &out);
  }
  input->Finish(&out);
  return out;
}

// The amplitude of `hz` in `samples` at 11025 Hz (a single-bin DFT over whole cycles), skipping
// the ends.
double Amplitude(const std::vector<std::int16_t>& samples, double hz) {
  double re = 0, im = 0;
  const std::size_t from = 1000, to = samples.size() - 1000;
  for (std::size_t i = from; i < to; ++i) {
    const double phase = 2 * M_PI * hz * static_cast<double>(i) / media::kChromaprintRate;
    re += samples[i] * std::cos(phase);
    im += samples[i] * std::sin(phase);
  }
  return 2 * std::hypot(re, im) / static_cast<double>(to - from) / 32768;
}

TEST(ChromaprintInputTest, EveryFormatAndRateGivesOneSampleEvery11025thOfASecond) {
  const auto tone = [](int, std::int64_t i) { return 0.5 * std::sin(0.05 * static_cast<double>(i)); };
  for (AVSampleFormat format : {AV_SAMPLE_FMT_U8, AV_SAMPLE_FMT_S16, AV_SAMPLE_FMT_S16P, AV_SAMPLE_FMT_S32,
                                AV_SAMPLE_FMT_S32P, AV_SAMPLE_FMT_S64, AV_SAMPLE_FMT_FLT, AV_SAMPLE_FMT_FLTP,
                                AV_SAMPLE_FMT_DBL, AV_SAMPLE_FMT_DBLP}) {
    for (int rate : {8000, 11025, 22050, 44100, 44056, 48000, 96000}) {
      for (int channels : {1, 2, 6}) {
        SCOPED_TRACE(std::string(av_get_sample_fmt_name(format)) + " " + std::to_string(rate) + " Hz " +
                     std::to_string(channels) + " ch");
        const auto out = Convert(format, rate, channels, 1.5, 1000, tone);
        // Output n lies at n/11025 s; every one before the end of the input is produced.
        const auto expected = static_cast<std::size_t>(std::ceil(std::floor(1.5 * rate) * 11025.0 / rate));
        EXPECT_EQ(out.size(), expected);
      }
    }
  }
}

TEST(ChromaprintInputTest, KeepsWhatChromaprintHearsAndRejectsWhatWouldFoldOntoIt) {
  for (int rate : {22050, 44100, 48000, 88200, 96000}) {
    SCOPED_TRACE(rate);
    const auto sine = [rate](double hz) {
      return [rate, hz](int, std::int64_t i) { return 0.5 * std::sin(2 * M_PI * hz * static_cast<double>(i) / rate); };
    };
    // In the band Chromaprint uses (28-3520 Hz): the same amplitude, within 0.2 dB, and less
    // than 1 dB down at its top.
    for (double hz : {110.0, 440.0, 1760.0, 3520.0}) {
      const double gain = Amplitude(Convert(AV_SAMPLE_FMT_FLTP, rate, 2, 2.0, 1024, sine(hz)), hz) / 0.5;
      EXPECT_NEAR(20 * std::log10(gain), 0, hz < 3000 ? 0.2 : 1.0) << hz << " Hz";
    }
    // 9000 Hz would fold onto 2025 Hz at 11025 Hz: at least 40 dB down there.
    const double folded = Amplitude(Convert(AV_SAMPLE_FMT_FLTP, rate, 2, 2.0, 1024, sine(9000)), 2025) / 0.5;
    EXPECT_LT(20 * std::log10(folded + 1e-12), -40);
  }
}

TEST(ChromaprintInputTest, WholeRatiosGiveWhatTheGeneralFormGives) {
  // 22.05, 44.1 and 88.2 kHz are whole multiples of 11025 Hz and take their own vector form; a rate
  // 1 Hz away takes the general one. The same tones, sampled at both, must come out the same.
  for (int rate : {22050, 44100, 88200}) {
    SCOPED_TRACE(rate);
    const auto chord = [](int r) {
      return [r](int, std::int64_t i) {
        const double t = static_cast<double>(i) / r;
        return 0.3 * std::sin(2 * M_PI * 220 * t) + 0.2 * std::sin(2 * M_PI * 1318.5 * t + 1) +
               0.1 * std::sin(2 * M_PI * 3000 * t + 2);
      };
    };
    const auto whole = Convert(AV_SAMPLE_FMT_FLTP, rate, 2, 1.0, 1024, chord(rate));
    const auto general = Convert(AV_SAMPLE_FMT_FLTP, rate + 1, 2, 1.0, 1024, chord(rate + 1));
    ASSERT_NEAR(static_cast<double>(whole.size()), static_cast<double>(general.size()), 1.0);
    int worst = 0;
    for (std::size_t i = 100; i + 100 < std::min(whole.size(), general.size()); ++i) {
      worst = std::max(worst, std::abs(whole[i] - general[i]));
    }
    EXPECT_LT(worst, 0.01 * 32768) << "largest difference, in 16-bit steps";
  }
}

TEST(ChromaprintInputTest, ChannelsAreAveragedAndFramingDoesNotMatter) {
  // Left +0.4, right −0.2: the mono mix is +0.1 whatever the layout.
  const auto dc = [](int c, std::int64_t) { return c == 0 ? 0.4 : -0.2; };
  for (AVSampleFormat format : {AV_SAMPLE_FMT_S16, AV_SAMPLE_FMT_FLTP, AV_SAMPLE_FMT_S32}) {
    const auto out = Convert(format, 44100, 2, 1.0, 777, dc);
    ASSERT_GT(out.size(), 2000u);
    EXPECT_NEAR(out[out.size() / 2], 0.1 * 32768, 3) << av_get_sample_fmt_name(format);
  }
  const auto tone = [](int c, std::int64_t i) { return 0.3 * std::sin(0.01 * static_cast<double>(i) * (c + 1)); };
  EXPECT_EQ(Convert(AV_SAMPLE_FMT_FLTP, 48000, 2, 1.0, 4096, tone), Convert(AV_SAMPLE_FMT_FLTP, 48000, 2, 1.0, 33, tone));
}

TEST(ChromaprintInputTest, LoudInputIsClippedNotWrapped) {
  // Full-scale square waves at two rates: the filter's overshoot clips at the 16-bit limits.
  const auto square = [](int, std::int64_t i) { return (i / 50) % 2 ? 0.999 : -0.999; };
  const auto out = Convert(AV_SAMPLE_FMT_FLT, 44100, 1, 1.0, 1024, square);
  const auto [low, high] = std::minmax_element(out.begin(), out.end());
  EXPECT_EQ(*high, 32767);
  EXPECT_EQ(*low, -32768);
}

TEST(ChromaprintInputTest, RefusesWhatItCannotRead) {
  EXPECT_EQ(ChromaprintInput::Create(0, AV_SAMPLE_FMT_FLT, 2).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ChromaprintInput::Create(44100, AV_SAMPLE_FMT_FLT, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ChromaprintInput::Create(44100, AV_SAMPLE_FMT_NONE, 2).status().code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace plyr::transcoder
