// TruePeakMeter: the highest absolute value of a signal between its samples as well as at them
// (ITU-R BS.1770 "true peak"), by 4x oversampling with a 48-tap interpolator.
//
// Why not libavfilter's ebur128 `peak=true`: it oversamples with a general resampler and cost
// 0.4 CPU-s per 3.5-minute track, 4 % of the whole rendition ladder (bench/RESULTS.md). Here an
// interpolated value can exceed the peak found so far only where the samples feeding it are
// within the filter's gain of that peak, so quiet stretches are skipped exactly (no estimate), and
// the four phases are computed together in one vector.
//
// Feed packed float samples in order; not thread-safe.
#pragma once

#include <array>
#include <vector>

namespace plyr::transcoder {

class TruePeakMeter {
 public:
  explicit TruePeakMeter(int channels);

  // Adds `frames` frames of `channels` interleaved samples.
  void Add(const float* interleaved, int frames);
  // The true peak so far, linear (1.0 = full scale); never below the sample peak.
  float peak() const { return peak_; }

  static constexpr int kPhases = 4;
  static constexpr int kTapsPerPhase = 12;

 private:
  typedef float Vec4 __attribute__((vector_size(16)));
  void AddChannel(std::vector<float>& history_and_samples);

  int channels_;
  std::array<Vec4, kTapsPerPhase> taps_;  // taps_[k][p]: the weight of x[m - k] in phase p
  float gain_ = 1;                        // the largest sum of |weights| over the phases
  std::vector<std::vector<float>> history_;  // per channel: the last kTapsPerPhase - 1 samples
  std::vector<float> scratch_;
  float peak_ = 0;
};

}  // namespace plyr::transcoder
