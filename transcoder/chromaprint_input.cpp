#include "transcoder/chromaprint_input.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

extern "C" {
#include <libavutil/frame.h>
}

#include "common/media/chromaprint.h"
#include "common/media/cpu.h"

namespace plyr::transcoder {

namespace {

// Chromaprint's chroma reaches 3520 Hz; everything up to here is kept as it is.
constexpr double kPassHz = 3600;
// Filter length at 44.1 kHz (scaled with the input rate, so the filter spans the same time): 24
// taps with a Kaiser window of beta 5 leave items within 0.1 % of bits of fpcalc's (measured on
// elvish-theme; 16 taps: 0.6-0.9 %).
constexpr int kTapsAt44k = 24;
constexpr double kKaiserBeta = 5;
// Above this many phases (input rates sharing few factors with 11025, e.g. 44056 Hz) the phase is
// rounded to the nearest of this many: at most 1/1024 of a sample off.
constexpr int kMaxPhases = 512;
// Whole ratios up to this (176.4 kHz) take the phase-stream form; the filter then has at most this
// many taps per phase (24 taps at 44.1 kHz and below, about 0.75·M + 1 above).
constexpr int kMostWholeRatio = 16;
constexpr int kMostTapsPerPhase = 24;

double BesselI0(double x) {
  double sum = 1, term = 1;
  for (int k = 1; k < 40; ++k) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
  }
  return sum;
}

// 8 floats: GCC and clang compile this to two SSE registers, or one AVX register in the variant
// built for AVX2.
typedef float Float8 __attribute__((vector_size(32)));
typedef float Float4 __attribute__((vector_size(16)));

// The dot product of `taps` weights and samples (a multiple of 8).
[[gnu::always_inline]] inline float Dot(const float* x, const float* h, int taps) {
  Float8 sum = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int k = 0; k < taps; k += 8) {
    Float8 xv, hv;
    std::memcpy(&xv, x + k, sizeof xv);
    std::memcpy(&hv, h + k, sizeof hv);
    sum += xv * hv;
  }
  return ((sum[0] + sum[4]) + (sum[1] + sum[5])) + ((sum[2] + sum[6]) + (sum[3] + sum[7]));
}

// Computes the outputs whose taps all lie in mono[0, available) (mono[0] is input sample `start`)
// and whose position is before input sample `end`, at most `room`, into out as 16-bit values;
// advances the next output's position (*base + *remainder / L) by M/L per output and returns how
// many it wrote.
// `kAvx`: 8-float vectors are single registers (with SSE alone, their shuffles and four sums at
// once spill to memory and cost more than they save).
template <bool kAvx>
[[gnu::always_inline]] inline std::size_t FilterRunBody(
    const float* mono, std::int64_t start, std::int64_t available, const float* table, int taps, int phases,
    std::int64_t L, std::int64_t M, std::int64_t* base, std::int64_t* remainder, std::int64_t end,
    std::int16_t* out, std::size_t room) {
  const int before = taps / 2 - 1;  // taps before the output's own position
  const std::int64_t whole_step = M / L, fraction_step = M % L;
  const std::int64_t last_base = std::min(end - 1, start + available - taps + before);
  float values[256];
  room = std::min<std::size_t>(room, 256);
  std::size_t written = 0;
  std::int64_t b = *base, r = *remainder;
  if (L == 1 && M <= kMostWholeRatio && b <= last_base) {
    // A whole ratio (44.1 kHz: M = 4): output n of this run is Σ_k h[k]·x[w + n·M + k] with
    // w = b − before. Written as k = q·M + p, its sample is phase p's q-th after the output's own:
    // with the window split into M phase streams (stream_p[i] = x[w + i·M + p]), every tap of eight
    // consecutive outputs is one contiguous load from one stream, and no horizontal sum is needed.
    const std::size_t count = std::min<std::size_t>(room, static_cast<std::size_t>((last_base - b) / M + 1));
    const std::size_t vectors = (count + 7) / 8;
    const std::size_t stream_length = vectors * 8 + static_cast<std::size_t>((taps + M - 1) / M);
    float streams[kMostWholeRatio][256 + 8 + kMostTapsPerPhase];
    const float* window = mono + (b - before - start);
    const std::int64_t inputs = static_cast<std::int64_t>(count - 1) * M + taps;  // what the run's taps read
    std::int64_t split = 0;  // inputs already split
    if (kAvx && M == 4) {    // the common case (44.1 kHz), in vectors: 32 inputs to 4 × 8
      for (; split + 32 <= inputs; split += 32) {
        Float8 x0, x1, x2, x3;
        std::memcpy(&x0, window + split, sizeof x0);
        std::memcpy(&x1, window + split + 8, sizeof x1);
        std::memcpy(&x2, window + split + 16, sizeof x2);
        std::memcpy(&x3, window + split + 24, sizeof x3);
        // Each pair to (phases 0 and 1 of its 4 groups, phases 2 and 3 of them), then the halves joined.
        const Float8 a01 = __builtin_shufflevector(x0, x1, 0, 4, 8, 12, 1, 5, 9, 13);
        const Float8 a23 = __builtin_shufflevector(x0, x1, 2, 6, 10, 14, 3, 7, 11, 15);
        const Float8 b01 = __builtin_shufflevector(x2, x3, 0, 4, 8, 12, 1, 5, 9, 13);
        const Float8 b23 = __builtin_shufflevector(x2, x3, 2, 6, 10, 14, 3, 7, 11, 15);
        const Float8 p0 = __builtin_shufflevector(a01, b01, 0, 1, 2, 3, 8, 9, 10, 11);
        const Float8 p1 = __builtin_shufflevector(a01, b01, 4, 5, 6, 7, 12, 13, 14, 15);
        const Float8 p2 = __builtin_shufflevector(a23, b23, 0, 1, 2, 3, 8, 9, 10, 11);
        const Float8 p3 = __builtin_shufflevector(a23, b23, 4, 5, 6, 7, 12, 13, 14, 15);
        const std::size_t at = static_cast<std::size_t>(split / 4);
        std::memcpy(streams[0] + at, &p0, sizeof p0);
        std::memcpy(streams[1] + at, &p1, sizeof p1);
        std::memcpy(streams[2] + at, &p2, sizeof p2);
        std::memcpy(streams[3] + at, &p3, sizeof p3);
      }
    }
    for (std::int64_t p = 0; p < M; ++p) {
      float* stream = streams[p];
      std::size_t i = static_cast<std::size_t>(split / M);
      for (std::int64_t at = split + p; at < inputs; at += M) stream[i++] = window[at];
      std::fill(stream + i, stream + stream_length, 0.0f);
    }
    // Four output vectors at a time: four independent sums keep the adder busy.
    std::size_t v = 0;
    for (; kAvx && v + 4 <= vectors; v += 4) {
      Float8 sum0 = {}, sum1 = {}, sum2 = {}, sum3 = {};
      for (int p = 0; p < M; ++p) {
        const float* stream = streams[p] + v * 8;
        for (int k = p; k < taps; k += static_cast<int>(M), ++stream) {
          Float8 x0, x1, x2, x3;
          std::memcpy(&x0, stream, sizeof x0);
          std::memcpy(&x1, stream + 8, sizeof x1);
          std::memcpy(&x2, stream + 16, sizeof x2);
          std::memcpy(&x3, stream + 24, sizeof x3);
          const float weight = table[k];
          sum0 += x0 * weight;
          sum1 += x1 * weight;
          sum2 += x2 * weight;
          sum3 += x3 * weight;
        }
      }
      std::memcpy(values + v * 8, &sum0, sizeof sum0);
      std::memcpy(values + v * 8 + 8, &sum1, sizeof sum1);
      std::memcpy(values + v * 8 + 16, &sum2, sizeof sum2);
      std::memcpy(values + v * 8 + 24, &sum3, sizeof sum3);
    }
    for (; v < vectors; ++v) {
      // Two 4-float sums: GCC keeps an 8-float one in memory when it takes two SSE registers.
      Float4 low = {}, high = {};
      for (int p = 0; p < M; ++p) {
        const float* stream = streams[p] + v * 8;
        for (int k = p; k < taps; k += static_cast<int>(M), ++stream) {
          Float4 x0, x1;
          std::memcpy(&x0, stream, sizeof x0);
          std::memcpy(&x1, stream + 4, sizeof x1);
          low += x0 * table[k];
          high += x1 * table[k];
        }
      }
      std::memcpy(values + v * 8, &low, sizeof low);
      std::memcpy(values + v * 8 + 4, &high, sizeof high);
    }
    written = count;
    b += static_cast<std::int64_t>(count) * M;
  }
  while (written < room && b <= last_base) {
    const int phase = phases == L ? static_cast<int>(r) : static_cast<int>(r * phases / L);
    values[written++] = Dot(mono + (b - before - start), table + static_cast<std::size_t>(phase) * taps, taps);
    b += whole_step;
    r += fraction_step;
    if (r >= L) {
      r -= L;
      ++b;
    }
  }
  *base = b;
  *remainder = r;
  std::fill(values + written, values + (written + 7) / 8 * 8, 0.0f);
  // To 16 bits as swresample does: scaled, clipped, rounded to nearest (adding and removing
  // 1.5·2^23 rounds a float of this size to an integer).
  typedef std::int32_t Int8 __attribute__((vector_size(32)));
  const Float8 low = Float8{} - 32768.0f, high = Float8{} + 32767.0f;
  for (std::size_t i = 0; i < written; i += 8) {
    Float8 v;
    std::memcpy(&v, values + i, sizeof v);
    v *= 32768.0f;
    v = v < low ? low : v;
    v = v > high ? high : v;
    v = (v + 12582912.0f) - 12582912.0f;
    const Int8 rounded = __builtin_convertvector(v, Int8);
    const std::size_t count = std::min<std::size_t>(8, written - i);
    if (count == 8) {
      typedef std::int16_t Short8 __attribute__((vector_size(16)));
      const Short8 narrow = __builtin_convertvector(rounded, Short8);
      std::memcpy(out + i, &narrow, sizeof narrow);
      continue;
    }
    for (std::size_t j = 0; j < count; ++j) out[i + j] = static_cast<std::int16_t>(rounded[j]);
  }
  return written;
}

// 1.0 is full scale: the factor that maps a sample type's range to [-1, 1).
template <typename Sample>
constexpr float FullScale() {
  if constexpr (std::is_same_v<Sample, std::uint8_t>) return 1.0f / 128;
  if constexpr (std::is_same_v<Sample, std::int16_t>) return 1.0f / 32768;
  if constexpr (std::is_same_v<Sample, std::int32_t>) return 1.0f / 2147483648.0f;
  if constexpr (std::is_same_v<Sample, std::int64_t>) return 1.0f / 9223372036854775808.0f;
  return 1.0f;
}

template <typename Sample>
float Normalized(Sample v) {
  if constexpr (std::is_same_v<Sample, std::uint8_t>) return (static_cast<float>(v) - 128.0f) * FullScale<Sample>();
  return static_cast<float>(v) * FullScale<Sample>();
}

// mono[i] (+)= channel sample i × gain, for n samples `stride` apart. The contiguous case (planar
// audio, what decoders emit) is written in vectors: compilers at -O2 leave such loops scalar.
template <typename Sample>
[[gnu::always_inline]] inline void MixPlaneBody(const Sample* __restrict in, int stride, int n,
                                                               float gain, bool first, float* __restrict mono) {
  int i = 0;
  if (stride == 1 && !std::is_same_v<Sample, std::uint8_t>) {
    typedef Sample SampleVector __attribute__((vector_size(8 * sizeof(Sample))));
    const float scale = gain * FullScale<Sample>();
    for (; i + 8 <= n; i += 8) {
      SampleVector raw;
      std::memcpy(&raw, in + i, sizeof raw);
      Float8 v = __builtin_convertvector(raw, Float8) * scale;
      if (!first) {
        Float8 sum;
        std::memcpy(&sum, mono + i, sizeof sum);
        v += sum;
      }
      std::memcpy(mono + i, &v, sizeof v);
    }
  }
  for (; i < n; ++i) {
    const float v = Normalized(in[static_cast<std::size_t>(i) * stride]) * gain;
    mono[i] = first ? v : mono[i] + v;
  }
}

// Packed stereo (WAV, FLAC): mono[i] = (left + right) × gain, in vectors.
template <typename Sample>
[[gnu::always_inline]] inline void MixPackedStereoBody(const Sample* __restrict in, int n, float gain,
                                                                      float* __restrict mono) {
  int i = 0;
  if constexpr (!std::is_same_v<Sample, std::uint8_t>) {
    typedef Sample SampleVector __attribute__((vector_size(8 * sizeof(Sample))));
    const float scale = gain * FullScale<Sample>();
    for (; i + 8 <= n; i += 8) {
      SampleVector raw0, raw1;  // frames i..i+3 and i+4..i+7, left and right alternating
      std::memcpy(&raw0, in + 2 * i, sizeof raw0);
      std::memcpy(&raw1, in + 2 * i + 8, sizeof raw1);
      const Float8 a = __builtin_convertvector(raw0, Float8), b = __builtin_convertvector(raw1, Float8);
      const Float8 v = (__builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14) +
                        __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)) * scale;
      std::memcpy(mono + i, &v, sizeof v);
    }
  }
  for (; i < n; ++i) mono[i] = (Normalized(in[2 * i]) + Normalized(in[2 * i + 1])) * gain;
}

// Planar stereo (what Vorbis, Opus, MP3 and AAC decoders emit): mono[i] = left × g + right × g, in
// one pass rather than a pass per channel.
template <typename Sample>
[[gnu::always_inline]] inline void MixPlanarStereoBody(const Sample* __restrict left, const Sample* __restrict right,
                                                       int n, float gain, float* __restrict mono) {
  int i = 0;
  if constexpr (!std::is_same_v<Sample, std::uint8_t>) {
    typedef Sample SampleVector __attribute__((vector_size(8 * sizeof(Sample))));
    const float scale = gain * FullScale<Sample>();
    for (; i + 8 <= n; i += 8) {
      SampleVector l, r;
      std::memcpy(&l, left + i, sizeof l);
      std::memcpy(&r, right + i, sizeof r);
      const Float8 v = __builtin_convertvector(l, Float8) * scale + __builtin_convertvector(r, Float8) * scale;
      std::memcpy(mono + i, &v, sizeof v);
    }
  }
  for (; i < n; ++i) mono[i] = Normalized(left[i]) * gain + Normalized(right[i]) * gain;
}

// Each loop above is compiled twice, for any x86-64 and with AVX2 (media::CpuHasAvx2 chooses).
__attribute__((target("avx2"))) std::size_t FilterRunAvx2(const float* mono, std::int64_t start,
                                                           std::int64_t available, const float* table, int taps,
                                                           int phases, std::int64_t L, std::int64_t M,
                                                           std::int64_t* base, std::int64_t* remainder,
                                                           std::int64_t end, std::int16_t* out, std::size_t room) {
  return FilterRunBody<true>(mono, start, available, table, taps, phases, L, M, base, remainder, end, out, room);
}

std::size_t FilterRunGeneric(const float* mono, std::int64_t start, std::int64_t available, const float* table,
                             int taps, int phases, std::int64_t L, std::int64_t M, std::int64_t* base,
                             std::int64_t* remainder, std::int64_t end, std::int16_t* out, std::size_t room) {
  return FilterRunBody<false>(mono, start, available, table, taps, phases, L, M, base, remainder, end, out, room);
}

template <typename Sample>
__attribute__((target("avx2"))) void MixPlaneAvx2(const Sample* in, int stride, int n, float gain, bool first,
                                                  float* mono) {
  MixPlaneBody(in, stride, n, gain, first, mono);
}

template <typename Sample>
void MixPlaneGeneric(const Sample* in, int stride, int n, float gain, bool first, float* mono) {
  MixPlaneBody(in, stride, n, gain, first, mono);
}

template <typename Sample>
__attribute__((target("avx2"))) void MixPackedStereoAvx2(const Sample* in, int n, float gain, float* mono) {
  MixPackedStereoBody(in, n, gain, mono);
}

template <typename Sample>
void MixPackedStereoGeneric(const Sample* in, int n, float gain, float* mono) {
  MixPackedStereoBody(in, n, gain, mono);
}

template <typename Sample>
__attribute__((target("avx2"))) void MixPlanarStereoAvx2(const Sample* left, const Sample* right, int n, float gain,
                                                         float* mono) {
  MixPlanarStereoBody(left, right, n, gain, mono);
}

template <typename Sample>
void MixPlanarStereoGeneric(const Sample* left, const Sample* right, int n, float gain, float* mono) {
  MixPlanarStereoBody(left, right, n, gain, mono);
}

template <typename Sample>
void Mix(const AVFrame& frame, int channels, bool planar, float* mono) {
  const float gain = 1.0f / static_cast<float>(channels);
  if (planar && channels == 2) {
    const auto* left = reinterpret_cast<const Sample*>(frame.extended_data[0]);
    const auto* right = reinterpret_cast<const Sample*>(frame.extended_data[1]);
    if (media::CpuHasAvx2()) {
      MixPlanarStereoAvx2(left, right, frame.nb_samples, gain, mono);
    } else {
      MixPlanarStereoGeneric(left, right, frame.nb_samples, gain, mono);
    }
    return;
  }
  if (!planar && channels == 2) {
    const auto* in = reinterpret_cast<const Sample*>(frame.extended_data[0]);
    if (media::CpuHasAvx2()) {
      MixPackedStereoAvx2(in, frame.nb_samples, gain, mono);
    } else {
      MixPackedStereoGeneric(in, frame.nb_samples, gain, mono);
    }
    return;
  }
  for (int c = 0; c < channels; ++c) {
    const auto* in = planar ? reinterpret_cast<const Sample*>(frame.extended_data[c])
                            : reinterpret_cast<const Sample*>(frame.extended_data[0]) + c;
    const int stride = planar ? 1 : channels;
    if (media::CpuHasAvx2()) {
      MixPlaneAvx2(in, stride, frame.nb_samples, gain, c == 0, mono);
    } else {
      MixPlaneGeneric(in, stride, frame.nb_samples, gain, c == 0, mono);
    }
  }
}

}  // namespace

StatusOr<ChromaprintInput> ChromaprintInput::Create(int sample_rate, AVSampleFormat format, int channels) {
  if (sample_rate < 1000 || sample_rate > 768000 || channels < 1 || channels > 64) {
    return Status(StatusCode::kInvalidArgument, "audio at " + std::to_string(sample_rate) + " Hz with " +
                                                    std::to_string(channels) + " channels cannot be fingerprinted");
  }
  switch (av_get_packed_sample_fmt(format)) {
    case AV_SAMPLE_FMT_U8:
    case AV_SAMPLE_FMT_S16:
    case AV_SAMPLE_FMT_S32:
    case AV_SAMPLE_FMT_S64:
    case AV_SAMPLE_FMT_FLT:
    case AV_SAMPLE_FMT_DBL:
      break;
    default:
      return Status(StatusCode::kUnimplemented, "cannot fingerprint samples in this format");
  }
  ChromaprintInput input;
  input.format_ = format;
  input.channels_ = channels;
  const std::int64_t common = std::gcd<std::int64_t>(sample_rate, media::kChromaprintRate);
  input.in_per_step_ = sample_rate / common;
  input.out_per_step_ = media::kChromaprintRate / common;
  input.phases_ = static_cast<int>(std::min<std::int64_t>(input.out_per_step_, kMaxPhases));
  // A multiple of 8 (the vector width), spanning the same time at every rate.
  const double scaled = std::max(1.0, sample_rate / 44100.0) * kTapsAt44k;
  input.taps_ = std::max(16, static_cast<int>(std::ceil(scaled / 8)) * 8);

  // Cut-off halfway between the last kept frequency and the first one that would fold below it
  // (11025 − 3600 Hz), below the input's own Nyquist frequency.
  const double cutoff_hz = std::min((kPassHz + (media::kChromaprintRate - kPassHz)) / 2, 0.45 * sample_rate);
  const double fc = cutoff_hz / sample_rate;  // cycles per input sample
  const int taps = input.taps_;
  const double half_span = taps / 2.0;
  input.table_.resize(static_cast<std::size_t>(input.phases_) * taps);
  for (int phase = 0; phase < input.phases_; ++phase) {
    const double frac = static_cast<double>(phase) / input.phases_;
    float* weights = &input.table_[static_cast<std::size_t>(phase) * taps];
    double sum = 0;
    std::vector<double> w(taps);
    for (int k = 0; k < taps; ++k) {
      const double t = k - (taps / 2 - 1) - frac;  // distance of tap k from the output's position
      const double sinc = t == 0 ? 2 * fc : std::sin(2 * M_PI * fc * t) / (M_PI * t);
      const double r = t / half_span;
      const double window = std::abs(r) >= 1 ? 0 : BesselI0(kKaiserBeta * std::sqrt(1 - r * r)) / BesselI0(kKaiserBeta);
      w[k] = sinc * window;
      sum += w[k];
    }
    for (int k = 0; k < taps; ++k) weights[k] = static_cast<float>(w[k] / sum);  // unity gain at 0 Hz
  }
  // Silence before the first sample, so the first output (at position 0) has its full window.
  input.mono_.assign(static_cast<std::size_t>(taps / 2 - 1), 0.0f);
  input.mono_start_ = -(taps / 2 - 1);
  return input;
}

void ChromaprintInput::Convert(const AVFrame& frame, std::vector<std::int16_t>* out) {
  if (frame.nb_samples <= 0) return;
  const std::size_t held = mono_.size();
  mono_.resize(held + static_cast<std::size_t>(frame.nb_samples));
  float* mono = mono_.data() + held;
  const bool planar = av_sample_fmt_is_planar(format_);
  switch (av_get_packed_sample_fmt(format_)) {
    case AV_SAMPLE_FMT_U8: Mix<std::uint8_t>(frame, channels_, planar, mono); break;
    case AV_SAMPLE_FMT_S16: Mix<std::int16_t>(frame, channels_, planar, mono); break;
    case AV_SAMPLE_FMT_S32: Mix<std::int32_t>(frame, channels_, planar, mono); break;
    case AV_SAMPLE_FMT_S64: Mix<std::int64_t>(frame, channels_, planar, mono); break;
    case AV_SAMPLE_FMT_FLT: Mix<float>(frame, channels_, planar, mono); break;
    case AV_SAMPLE_FMT_DBL: Mix<double>(frame, channels_, planar, mono); break;
    default: break;  // refused by Create
  }
  received_ += frame.nb_samples;
  Filter(out, INT64_MAX);
}

void ChromaprintInput::Finish(std::vector<std::int16_t>* out) {
  // Silence after the last sample completes the windows of the last outputs; no output lies
  // past the end of the input.
  mono_.resize(mono_.size() + static_cast<std::size_t>(taps_), 0.0f);
  Filter(out, received_);
}

void ChromaprintInput::Filter(std::vector<std::int16_t>* out, std::int64_t end) {
  for (;;) {
    const std::size_t at = out->size();
    out->resize(at + 256);
    const auto run = media::CpuHasAvx2() ? FilterRunAvx2 : FilterRunGeneric;
    const std::size_t n = run(mono_.data(), mono_start_, static_cast<std::int64_t>(mono_.size()), table_.data(),
                                    taps_, phases_, out_per_step_, in_per_step_, &next_base_, &next_remainder_, end,
                                    out->data() + at, 256);
    out->resize(at + n);
    if (n < 256) break;
  }
  // Drop the history no future output reaches, once it is worth the move.
  const std::int64_t droppable = next_base_ - (taps_ / 2 - 1) - mono_start_;
  if (droppable > 8192 && droppable * 2 > static_cast<std::int64_t>(mono_.size())) {
    mono_.erase(mono_.begin(), mono_.begin() + droppable);
    mono_start_ += droppable;
  }
}

}  // namespace plyr::transcoder
