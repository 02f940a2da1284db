#include "transcoder/true_peak.h"

#include <algorithm>
#include <cmath>

namespace plyr::transcoder {

namespace {

constexpr int kTaps = TruePeakMeter::kPhases * TruePeakMeter::kTapsPerPhase;
// Samples checked together before deciding whether a stretch can hold a new peak.
constexpr int kBlock = 64;

}  // namespace

TruePeakMeter::TruePeakMeter(int channels) : channels_(channels), history_(channels) {
  // A windowed-sinc low-pass at the original Nyquist frequency, sampled at 4x: phase p of the
  // interpolator is every 4th tap starting at p. Blackman window; each phase normalised to unit
  // gain at DC so a constant signal reads as itself.
  std::array<double, kTaps> h{};
  const double centre = (kTaps - 1) / 2.0;
  for (int n = 0; n < kTaps; ++n) {
    const double t = (n - centre) / kPhases;
    const double sinc = t == 0 ? 1.0 : std::sin(M_PI * t) / (M_PI * t);
    const double x = (n + 0.5) / kTaps;
    const double window = 0.42 - 0.5 * std::cos(2 * M_PI * x) + 0.08 * std::cos(4 * M_PI * x);
    h[n] = sinc * window;
  }
  gain_ = 0;
  for (int p = 0; p < kPhases; ++p) {
    double sum = 0, abs_sum = 0;
    for (int k = 0; k < kTapsPerPhase; ++k) sum += h[p + kPhases * k];
    for (int k = 0; k < kTapsPerPhase; ++k) {
      const double w = h[p + kPhases * k] / sum;
      taps_[k][p] = static_cast<float>(w);
      abs_sum += std::fabs(w);
    }
    gain_ = std::max(gain_, static_cast<float>(abs_sum));
  }
  for (auto& h : history_) h.assign(kTapsPerPhase - 1, 0.0f);
}

void TruePeakMeter::Add(const float* interleaved, int frames) {
  for (int c = 0; c < channels_; ++c) {
    scratch_ = history_[c];
    scratch_.reserve(scratch_.size() + frames);
    for (int i = 0; i < frames; ++i) scratch_.push_back(interleaved[static_cast<std::size_t>(i) * channels_ + c]);
    AddChannel(scratch_);
    history_[c].assign(scratch_.end() - (kTapsPerPhase - 1), scratch_.end());
  }
}

// `x` holds kTapsPerPhase - 1 earlier samples, then the new ones.
void TruePeakMeter::AddChannel(std::vector<float>& x) {
  const int history = kTapsPerPhase - 1;
  const int end = static_cast<int>(x.size());
  for (int start = history; start < end; start += kBlock) {
    const int stop = std::min(end, start + kBlock);
    // Every output of this block is a weighted sum of x[start - history .. stop): it cannot
    // exceed gain_ times their largest magnitude.
    float loudest = 0;
    for (int i = start - history; i < stop; ++i) loudest = std::max(loudest, std::fabs(x[i]));
    for (int i = start; i < stop; ++i) peak_ = std::max(peak_, std::fabs(x[i]));  // the samples themselves
    if (loudest * gain_ <= peak_) continue;
    Vec4 most = {0, 0, 0, 0};
    for (int m = start; m < stop; ++m) {
      Vec4 sum = {0, 0, 0, 0};
      for (int k = 0; k < kTapsPerPhase; ++k) sum += taps_[k] * x[m - k];
      const Vec4 magnitude = sum < 0 ? -sum : sum;
      most = magnitude > most ? magnitude : most;
    }
    for (int p = 0; p < kPhases; ++p) peak_ = std::max(peak_, most[p]);
  }
}

}  // namespace plyr::transcoder
