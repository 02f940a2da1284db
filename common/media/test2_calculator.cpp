#include "common/media/test2_calculator.h"

#include <algorithm>
#include <cmath>
#include <cstring>

extern "C" {
#include <libavcodec/avfft.h>  // av_fft: FFmpeg 5.1's complex FFT
#include <libavutil/mem.h>
}

#include "common/media/cpu.h"

namespace plyr::media {

namespace {

// TEST2's frame: 4096 samples (0.37 s), a new one every 1365 (a third of it).
constexpr int kFrameSize = 4096;
constexpr int kFrameBits = 12;
constexpr int kFrameStep = kFrameSize / 3;
constexpr int kSampleRate = 11025;
// The chroma bands gather the spectrum from 28 to 3520 Hz.
constexpr int kMinHz = 28, kMaxHz = 3520;
constexpr double kChromaFilter[5] = {0.25, 0.75, 1.0, 0.75, 0.25};

// A classifier: a Haar-like filter over `width` frames and `height` bands from band `y` of the
// integral image, its value quantised by three thresholds into two bits (Gray-coded).
struct Classifier {
  int type, y, height, width;
  double t0, t1, t2;
};
// TEST2's sixteen, in item bit order (most significant first): the algorithm's definition.
constexpr Classifier kClassifiers[16] = {
    {0, 4, 3, 15, 1.98215, 2.35817, 2.63523},        {4, 4, 6, 15, -1.03809, -0.651211, -0.282167},
    {1, 0, 4, 16, -0.298702, 0.119262, 0.558497},    {3, 8, 2, 12, -0.105439, 0.0153946, 0.135898},
    {3, 4, 4, 8, -0.142891, 0.0258736, 0.200632},    {4, 0, 3, 5, -0.826319, -0.590612, -0.368214},
    {1, 2, 2, 9, -0.557409, -0.233035, 0.0534525},   {2, 7, 3, 4, -0.0646826, 0.00620476, 0.0784847},
    {2, 6, 2, 16, -0.192387, -0.029699, 0.215855},   {2, 1, 3, 2, -0.0397818, -0.00568076, 0.0292026},
    {5, 10, 1, 15, -0.53823, -0.369934, -0.190235},  {3, 6, 2, 10, -0.124877, 0.0296483, 0.139239},
    {2, 1, 1, 14, -0.101475, 0.0225617, 0.231971},   {3, 5, 6, 4, -0.0799915, -0.00729616, 0.063262},
    {1, 9, 2, 12, -0.272556, 0.019424, 0.302559},    {3, 4, 2, 14, -0.164292, -0.0321188, 0.0846339},
};
constexpr std::size_t kWidestClassifier = 16;

int FreqToIndex(double hz) { return static_cast<int>(std::round(kFrameSize * hz / kSampleRate)); }

// A run of consecutive FFT bins that fall into the same chroma band.
struct BandRun {
  int band, begin, end;
};

// Up to four runs of different bands, summed side by side.
struct RunGroup {
  std::array<int, 4> band, begin, length;  // an unused slot: band kBands, length 0
  int shortest, longest;
};

struct AvFree {
  void operator()(float* p) const { av_free(p); }
};

// Four and eight floats: an SSE register (every x86-64 has them) and an AVX one.
typedef float Float4 __attribute__((vector_size(16)));
typedef float Float8 __attribute__((vector_size(32)));
typedef std::int16_t Short8 __attribute__((vector_size(16)));
typedef std::int32_t Int4 __attribute__((vector_size(16)));
typedef std::int32_t Int8 __attribute__((vector_size(32)));

// data[i] = samples[i] × window[i] over the frame, in float as Chromaprint computes it.
void ApplyWindowGeneric(const std::int16_t* samples, const float* window, float* data) {
  for (int i = 0; i < kFrameSize; i += 8) {
    Short8 raw;
    Float4 w0, w1;
    std::memcpy(&raw, samples + i, sizeof raw);
    std::memcpy(&w0, window + i, sizeof w0);
    std::memcpy(&w1, window + i + 4, sizeof w1);
    // Widened to 32 bits first: GCC converts 16-bit lanes to float one at a time otherwise.
    const Int4 low = __builtin_convertvector(__builtin_shufflevector(raw, raw, 0, 1, 2, 3), Int4);
    const Int4 high = __builtin_convertvector(__builtin_shufflevector(raw, raw, 4, 5, 6, 7), Int4);
    const Float4 v0 = __builtin_convertvector(low, Float4) * w0, v1 = __builtin_convertvector(high, Float4) * w1;
    std::memcpy(data + i, &v0, sizeof v0);
    std::memcpy(data + i + 4, &v1, sizeof v1);
  }
}

__attribute__((target("avx2"))) void ApplyWindowAvx2(const std::int16_t* samples, const float* window, float* data) {
  for (int i = 0; i < kFrameSize; i += 8) {
    Short8 raw;
    Float8 w;
    std::memcpy(&raw, samples + i, sizeof raw);
    std::memcpy(&w, window + i, sizeof w);
    const Float8 v = __builtin_convertvector(__builtin_convertvector(raw, Int8), Float8) * w;
    std::memcpy(data + i, &v, sizeof v);
  }
}

// From the complex FFT (of n/2 points) of a frame's even and odd samples, the power of the real
// FFT's bins 8 to n/2 − 8 (the chroma bands start at bin 10), as av_rdft (FFmpeg 5.1's
// rdft_calc_c) would leave them: bins i and n/2 − i are separated from the pair with its
// operations in its order, so the same floats to the last bit, and each bin's power is then
// computed in float as Chromaprint's FFT frame computes it. Element by element, so in vectors.
// Bin n/4, its own mirror, is left to the caller.
template <typename Vector>
[[gnu::always_inline]] inline void SeparateBins(const Vector& a_re, const Vector& a_im, const Vector& b_re,
                                                const Vector& b_im, const Vector& cosine, const Vector& sine,
                                                Vector* low, Vector* high) {
  const Vector half = Vector{} + 0.5f;
  const Vector even_re = half * (a_re + b_re), odd_im = half * (b_re - a_re);
  const Vector even_im = half * (a_im - b_im), odd_re = half * (a_im + b_im);
  const Vector turned_re = odd_re * cosine + odd_im * sine, turned_im = odd_im * cosine - odd_re * sine;
  const Vector low_re = even_re + turned_re, low_im = even_im + turned_im;
  const Vector high_re = even_re - turned_re, high_im = turned_im - even_im;
  *low = low_re * low_re + low_im * low_im;
  *high = high_re * high_re + high_im * high_im;
}

void SeparatedPowerGeneric(const float* data, const float* cosines, const float* sines, float* power) {
  for (int i = 8; i < kFrameSize / 4; i += 4) {  // bins i..i+3 and n/2 − i − 3..n/2 − i
    Float4 a0, a1, b0, b1, cosine, sine, low, high;
    std::memcpy(&a0, data + 2 * i, sizeof a0);
    std::memcpy(&a1, data + 2 * i + 4, sizeof a1);
    std::memcpy(&b0, data + kFrameSize - 2 * i - 6, sizeof b0);
    std::memcpy(&b1, data + kFrameSize - 2 * i - 2, sizeof b1);
    std::memcpy(&cosine, cosines + i, sizeof cosine);
    std::memcpy(&sine, sines + i, sizeof sine);
    SeparateBins(__builtin_shufflevector(a0, a1, 0, 2, 4, 6), __builtin_shufflevector(a0, a1, 1, 3, 5, 7),
                 __builtin_shufflevector(b0, b1, 6, 4, 2, 0), __builtin_shufflevector(b0, b1, 7, 5, 3, 1), cosine,
                 sine, &low, &high);
    const Float4 high_ascending = __builtin_shufflevector(high, high, 3, 2, 1, 0);
    std::memcpy(power + i, &low, sizeof low);
    std::memcpy(power + kFrameSize / 2 - i - 3, &high_ascending, sizeof high_ascending);
  }
}

__attribute__((target("avx2"))) void SeparatedPowerAvx2(const float* data, const float* cosines, const float* sines,
                                                        float* power) {
  for (int i = 8; i < kFrameSize / 4; i += 8) {  // bins i..i+7 and n/2 − i − 7..n/2 − i
    Float8 a0, a1, b0, b1, cosine, sine, low, high;
    std::memcpy(&a0, data + 2 * i, sizeof a0);
    std::memcpy(&a1, data + 2 * i + 8, sizeof a1);
    std::memcpy(&b0, data + kFrameSize - 2 * i - 14, sizeof b0);
    std::memcpy(&b1, data + kFrameSize - 2 * i - 6, sizeof b1);
    std::memcpy(&cosine, cosines + i, sizeof cosine);
    std::memcpy(&sine, sines + i, sizeof sine);
    SeparateBins(__builtin_shufflevector(a0, a1, 0, 2, 4, 6, 8, 10, 12, 14),
                 __builtin_shufflevector(a0, a1, 1, 3, 5, 7, 9, 11, 13, 15),
                 __builtin_shufflevector(b0, b1, 14, 12, 10, 8, 6, 4, 2, 0),
                 __builtin_shufflevector(b0, b1, 15, 13, 11, 9, 7, 5, 3, 1), cosine, sine, &low, &high);
    const Float8 high_ascending = __builtin_shufflevector(high, high, 7, 6, 5, 4, 3, 2, 1, 0);
    std::memcpy(power + i, &low, sizeof low);
    std::memcpy(power + kFrameSize / 2 - i - 7, &high_ascending, sizeof high_ascending);
  }
}
static_assert((kFrameSize / 4 - 8) % 8 == 0, "whole vectors from bin 8 to n/4");

}  // namespace

struct Test2Calculator::Fft {
  // The complex FFT of half the frame's length, which FFmpeg's real FFT (av_rdft) runs inside.
  FFTContext* fft = av_fft_init(kFrameBits - 1, 0);
  std::unique_ptr<float, AvFree> window{static_cast<float*>(av_malloc(sizeof(float) * kFrameSize))};
  std::unique_ptr<float, AvFree> data{static_cast<float*>(av_malloc(sizeof(float) * kFrameSize))};
  std::unique_ptr<float, AvFree> power{static_cast<float*>(av_malloc(sizeof(float) * (kFrameSize / 2 + 8)))};
  // av_rdft's twiddle factors, as FFmpeg tabulates them (float cosines of i·2π/n).
  std::array<float, kFrameSize / 4> cosines{}, sines{};
  std::vector<RunGroup> groups;

  Fft() {
    // Hamming, scaled to 16-bit full scale, rounded to float as the FFT's input is.
    for (int i = 0; i < kFrameSize; ++i) {
      window.get()[i] = static_cast<float>((1.0 / INT16_MAX) * (0.54 - 0.46 * std::cos(i * 2.0 * M_PI / (kFrameSize - 1))));
    }
    const double step = 2 * M_PI / kFrameSize;
    for (int i = 0; i < kFrameSize / 4; ++i) {
      cosines[static_cast<std::size_t>(i)] = static_cast<float>(std::cos(i * step));
      sines[static_cast<std::size_t>(i)] = static_cast<float>(std::cos((kFrameSize / 4 - i) * step));
    }
    // Bins 10 to 1307: inside the 8 to n/2 − 8 that SeparatedPower computes.
    const int min_bin = std::max(1, FreqToIndex(kMinHz));
    const int max_bin = std::min(kFrameSize / 2, FreqToIndex(kMaxHz));
    std::vector<BandRun> runs;
    for (int i = min_bin; i < max_bin; ++i) {
      const double hz = static_cast<double>(i) * kSampleRate / kFrameSize;
      const double octave = std::log(hz / (440.0 / 16.0)) / std::log(2.0);
      const int band = static_cast<int>(static_cast<char>(kBands * (octave - std::floor(octave))));
      if (runs.empty() || runs.back().band != band) runs.push_back({band, i, i});
      runs.back().end = i + 1;
    }
    // Consecutive runs, four to a group, a group never holding one band twice.
    for (std::size_t next = 0; next < runs.size();) {
      RunGroup group{};
      group.band.fill(kBands);
      int slots = 0;
      for (; slots < 4 && next < runs.size(); ++slots, ++next) {
        const BandRun& run = runs[next];
        if (std::find(group.band.begin(), group.band.begin() + slots, run.band) != group.band.begin() + slots) break;
        group.band[static_cast<std::size_t>(slots)] = run.band;
        group.begin[static_cast<std::size_t>(slots)] = run.begin;
        group.length[static_cast<std::size_t>(slots)] = run.end - run.begin;
        group.longest = std::max(group.longest, run.end - run.begin);
      }
      group.shortest = *std::min_element(group.length.begin(), group.length.end());
      groups.push_back(group);
    }
  }
  ~Fft() { av_fft_end(fft); }
  Fft(const Fft&) = delete;
  Fft& operator=(const Fft&) = delete;
};

Test2Calculator::Test2Calculator()
    : fft_(std::make_unique<Fft>()), joined_(kFrameSize), image_(kImageRows * kBands, 0.0) {}

Test2Calculator::~Test2Calculator() = default;

void Test2Calculator::Feed(std::span<const std::int16_t> samples) {
  // Frames start every kFrameStep samples, counted from the start of pending_ (the samples kept
  // from the last call, from the next frame's start) followed by the new ones. Frames wholly in
  // the new samples are read where they are; one that spans both is put together first.
  const std::size_t kept = pending_.size(), total = kept + samples.size();
  std::size_t at = 0;
  for (; at + kFrameSize <= total; at += kFrameStep) {
    if (at >= kept) {
      Frame(samples.data() + (at - kept));
      continue;
    }
    std::copy(pending_.begin() + static_cast<std::ptrdiff_t>(at), pending_.end(), joined_.begin());
    std::copy_n(samples.begin(), kFrameSize - (kept - at), joined_.begin() + static_cast<std::ptrdiff_t>(kept - at));
    Frame(joined_.data());
  }
  // Fewer than a frame's samples remain from `at` on.
  if (at >= kept) {
    pending_.assign(samples.begin() + static_cast<std::ptrdiff_t>(at - kept), samples.end());
  } else {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(at));
    pending_.insert(pending_.end(), samples.begin(), samples.end());
  }
}

std::vector<std::uint32_t> Test2Calculator::Finish() {
  std::vector<std::uint32_t> items = std::move(items_);
  Reset();
  return items;
}

void Test2Calculator::Reset() {
  pending_.clear();
  recent_next_ = recent_count_ = 0;
  std::fill(image_.begin(), image_.end(), 0.0);
  rows_ = 0;
  items_.clear();
}

void Test2Calculator::Frame(const std::int16_t* samples) {
  float* data = fft_->data.get();
  const float* window = fft_->window.get();
  if (CpuHasAvx2()) {
    ApplyWindowAvx2(samples, window, data);
  } else {
    ApplyWindowGeneric(samples, window, data);
  }
  // The real FFT as av_rdft computes it: the complex FFT of the frame's even and odd samples,
  // then each pair of bins separated again (SeparatedPower).
  av_fft_permute(fft_->fft, reinterpret_cast<FFTComplex*>(data));
  av_fft_calc(fft_->fft, reinterpret_cast<FFTComplex*>(data));
  float* power = fft_->power.get();
  if (CpuHasAvx2()) {
    SeparatedPowerAvx2(data, fft_->cosines.data(), fft_->sines.data(), power);
  } else {
    SeparatedPowerGeneric(data, fft_->cosines.data(), fft_->sines.data(), power);
  }
  // Bin n/4 is its own mirror: av_rdft only flips the sign of its imaginary part.
  const float quarter_re = data[kFrameSize / 2], quarter_im = data[kFrameSize / 2 + 1];
  power[kFrameSize / 4] = quarter_re * quarter_re + quarter_im * quarter_im;

  // Each band is the sum of its bins' power, added in bin order from zero: the order Chromaprint
  // adds them in, so the sums are the same to the last bit. Runs of bins in one band are summed
  // in registers, four runs of four different bands side by side (independent sums), rather than
  // one bin at a time through memory.
  std::array<double, kBands + 1> features{};  // the last: where a group's unused slots add
  for (const RunGroup& group : fft_->groups) {
    const float* p0 = power + group.begin[0];
    const float* p1 = power + group.begin[1];
    const float* p2 = power + group.begin[2];
    const float* p3 = power + group.begin[3];
    double s0 = features[group.band[0]], s1 = features[group.band[1]], s2 = features[group.band[2]],
           s3 = features[group.band[3]];
    int k = 0;
    for (; k < group.shortest; ++k) {
      s0 += static_cast<double>(p0[k]);
      s1 += static_cast<double>(p1[k]);
      s2 += static_cast<double>(p2[k]);
      s3 += static_cast<double>(p3[k]);
    }
    for (; k < group.longest; ++k) {
      if (k < group.length[0]) s0 += static_cast<double>(p0[k]);
      if (k < group.length[1]) s1 += static_cast<double>(p1[k]);
      if (k < group.length[2]) s2 += static_cast<double>(p2[k]);
      if (k < group.length[3]) s3 += static_cast<double>(p3[k]);
    }
    features[group.band[0]] = s0;
    features[group.band[1]] = s1;
    features[group.band[2]] = s2;
    features[group.band[3]] = s3;
  }

  // The 5-tap filter over the last five chroma vectors, then normalisation.
  std::copy_n(features.begin(), kBands, recent_[recent_next_].begin());
  recent_next_ = (recent_next_ + 1) % recent_.size();
  if (recent_count_ + 1 < std::size(kChromaFilter)) {
    ++recent_count_;
    return;
  }
  const std::size_t oldest = (recent_next_ + recent_.size() - std::size(kChromaFilter)) % recent_.size();
  Bands filtered{};
  for (int band = 0; band < kBands; ++band) {
    for (std::size_t j = 0; j < std::size(kChromaFilter); ++j) {
      filtered[static_cast<std::size_t>(band)] +=
          recent_[(oldest + j) % recent_.size()][static_cast<std::size_t>(band)] * kChromaFilter[j];
    }
  }
  double squares = 0;
  for (double v : filtered) squares += v * v;
  const double norm = squares > 0 ? std::sqrt(squares) : 0;
  if (norm < 0.01) {
    filtered.fill(0.0);
  } else {
    for (double& v : filtered) v /= norm;
  }
  AddFeatures(filtered);
}

void Test2Calculator::AddFeatures(const Bands& features) {
  double* row = &image_[(rows_ % kImageRows) * kBands];
  double sum = 0;
  for (int c = 0; c < kBands; ++c) row[c] = sum += features[static_cast<std::size_t>(c)];
  if (rows_ > 0) {
    const double* last = &image_[((rows_ - 1) % kImageRows) * kBands];
    for (int c = 0; c < kBands; ++c) row[c] = last[c] + row[c];
  }
  ++rows_;
  if (rows_ >= kWidestClassifier) items_.push_back(Item(rows_ - kWidestClassifier));
}

// The sum over frames [r1, r2) and bands [c1, c2), with Chromaprint's operations in its order.
double Test2Calculator::Area(std::size_t r1, std::size_t c1, std::size_t r2, std::size_t c2) const {
  if (r1 == r2 || c1 == c2) return 0.0;
  const double* row2 = &image_[((r2 - 1) % kImageRows) * kBands];
  if (r1 == 0) return c1 == 0 ? row2[c2 - 1] : row2[c2 - 1] - row2[c1 - 1];
  const double* row1 = &image_[((r1 - 1) % kImageRows) * kBands];
  if (c1 == 0) return row2[c2 - 1] - row1[c2 - 1];
  return row2[c2 - 1] - row1[c2 - 1] - row2[c1 - 1] + row1[c1 - 1];
}

std::uint32_t Test2Calculator::Item(std::size_t x) const {
  static constexpr std::uint32_t kGray[4] = {0, 1, 3, 2};
  std::uint32_t bits = 0;
  for (const Classifier& c : kClassifiers) {
    const std::size_t y = static_cast<std::size_t>(c.y), w = static_cast<std::size_t>(c.width),
                      h = static_cast<std::size_t>(c.height);
    double a = 0, b = 0;
    switch (c.type) {
      case 0:
        a = Area(x, y, x + w, y + h);
        break;
      case 1:
        a = Area(x, y + h / 2, x + w, y + h);
        b = Area(x, y, x + w, y + h / 2);
        break;
      case 2:
        a = Area(x + w / 2, y, x + w, y + h);
        b = Area(x, y, x + w / 2, y + h);
        break;
      case 3:
        a = Area(x, y + h / 2, x + w / 2, y + h) + Area(x + w / 2, y, x + w, y + h / 2);
        b = Area(x, y, x + w / 2, y + h / 2) + Area(x + w / 2, y + h / 2, x + w, y + h);
        break;
      case 4:
        a = Area(x, y + h / 3, x + w, y + 2 * (h / 3));
        b = Area(x, y, x + w, y + h / 3) + Area(x, y + 2 * (h / 3), x + w, y + h);
        break;
      case 5:
        a = Area(x + w / 3, y, x + 2 * (w / 3), y + h);
        b = Area(x, y, x + w / 3, y + h) + Area(x + 2 * (w / 3), y, x + w, y + h);
        break;
    }
    const double value = std::log((1.0 + a) / (1.0 + b));
    const int level = value < c.t1 ? (value < c.t0 ? 0 : 1) : (value < c.t2 ? 2 : 3);
    bits = (bits << 2) | kGray[level];
  }
  return bits;
}

}  // namespace plyr::media
