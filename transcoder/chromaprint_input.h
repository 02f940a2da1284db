// ChromaprintInput: turns decoded audio of any rate, sample format and channel count into what
// Chromaprint works on, 11025 Hz mono 16-bit, for the fingerprint stage of a transcoder job.
//
// Why not swresample: in a job the decode is already paid, so this conversion is most of the
// stage's cost, and swresample spent two to three times Chromaprint's own work on it
// (bench/RESULTS.md). Chromaprint hears only 28-3520 Hz, so the filter need not be flat beyond
// it nor reject anything that does not fold onto it: after the channels are averaged (as
// Chromaprint would do itself), one short windowed-sinc filter (24 taps at 44.1 kHz), evaluated
// only at the output instants and in vectors, resamples. Flat within 0.2 dB to 1.8 kHz, 0.5 dB
// down at 3.5 kHz, what would fold onto the band 40 dB down or more; items differ from fpcalc's
// in 0.05 % of bits (18 corpus files at 8-96 kHz).
//
// Not thread-safe; one per job. Contract: Convert the frames in order, then Finish once.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"

extern "C" {
#include <libavutil/samplefmt.h>
}

struct AVFrame;

namespace plyr::transcoder {

class ChromaprintInput {
 public:
  // Unimplemented for a sample format it cannot read (none of FFmpeg's audio decoders emit one);
  // InvalidArgument for a rate or channel count out of range.
  static StatusOr<ChromaprintInput> Create(int sample_rate, AVSampleFormat format, int channels);

  // Appends what `frame` (of the format given to Create) yields: about frame.nb_samples ×
  // 11025 / rate samples, fewer at first while the filter fills.
  void Convert(const AVFrame& frame, std::vector<std::int16_t>* out);
  // Appends the rest: the audio held back by the filter's look-ahead.
  void Finish(std::vector<std::int16_t>* out);

  int taps() const { return taps_; }

 private:
  ChromaprintInput() = default;
  // Appends every output whose window the history holds, up to input position `end`.
  void Filter(std::vector<std::int16_t>* out, std::int64_t end);

  AVSampleFormat format_ = AV_SAMPLE_FMT_NONE;
  int channels_ = 0;
  // Output n lies at input position n·M/L, the rates' ratio reduced (44.1 kHz: M = 4, L = 1).
  std::int64_t in_per_step_ = 1;   // M
  std::int64_t out_per_step_ = 1;  // L
  int phases_ = 1;                 // filter phases tabulated: L, or 512 when L is larger
  int taps_ = 0;
  std::vector<float> table_;  // phases_ × taps_ weights
  std::int64_t next_base_ = 0;       // the input sample at or before the next output's position
  std::int64_t next_remainder_ = 0;  // and how far past it, in L-ths of a sample
  std::vector<float> mono_;   // the channels averaged; mono_[0] is input sample mono_start_
  std::int64_t mono_start_ = 0;
  std::int64_t received_ = 0;  // input samples converted so far
};

}  // namespace plyr::transcoder
