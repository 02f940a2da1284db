// Test2Calculator: Chromaprint's TEST2 items (the algorithm fpcalc and AcoustID use) of 11025 Hz
// mono 16-bit audio, the same items libchromaprint 1.5 computes, at about half its CPU.
//
// Why not libchromaprint's own pass: in a transcoder job the decode is already paid, and the pass
// was most of what remained (0.08-0.09x of fpcalc's CPU on its own, against a budget of 0.10x
// for the whole stage; bench/RESULTS.md). Half of it was one scalar loop adding the spectrum into
// the twelve chroma bands through memory. Here the same steps run with the same arithmetic, in
// the same order wherever the order changes a result (FFmpeg's real FFT, as Debian's libchromaprint
// uses; float power; chroma bands summed bin by bin; the 5-tap chroma filter; normalisation; the
// rolling integral image over every frame since the start; the sixteen TEST2 classifiers), so the
// items are identical. The tests compare them with libchromaprint's.
//
// Not thread-safe; one per thread. Contract: Feed any number of times, then Finish, which
// returns the items and makes the calculator ready for the next audio.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace plyr::media {

class Test2Calculator {
 public:
  Test2Calculator();
  ~Test2Calculator();
  Test2Calculator(const Test2Calculator&) = delete;
  Test2Calculator& operator=(const Test2Calculator&) = delete;

  void Feed(std::span<const std::int16_t> samples);
  // One item per 1365 samples once 4096 + 19 × 1365 samples have been fed; none for less.
  std::vector<std::uint32_t> Finish();

 private:
  static constexpr int kBands = 12;
  static constexpr int kImageRows = 257;  // the rows the widest classifier (16) reaches back, and more
  using Bands = std::array<double, kBands>;

  void Frame(const std::int16_t* samples);
  void AddFeatures(const Bands& features);
  double Area(std::size_t r1, std::size_t c1, std::size_t r2, std::size_t c2) const;
  std::uint32_t Item(std::size_t row) const;
  void Reset();

  struct Fft;
  std::unique_ptr<Fft> fft_;
  std::vector<std::int16_t> pending_;  // from the next frame's start: fewer than a frame's samples
  std::vector<std::int16_t> joined_;   // a frame that spans pending_ and the samples fed
  std::array<Bands, 8> recent_{};      // the last chroma vectors, for the 5-tap filter
  std::size_t recent_next_ = 0, recent_count_ = 0;
  std::vector<double> image_;  // kImageRows rolling rows of the integral image, kBands each
  std::size_t rows_ = 0;
  std::vector<std::uint32_t> items_;
};

}  // namespace plyr::media
