// Chromaprint fingerprints (the TEST2 algorithm AcoustID and fpcalc use by default) of 16-bit PCM,
// and the compressed text form AcoustID and `fpcalc` print.
//
// A fingerprint is a sequence of 32-bit items, one per 1365 samples at 11025 Hz (about 8.08 per
// second), each describing the chroma of the 0.37 s around it. The items are computed by our own
// TEST2 pass (test2_calculator.h: libchromaprint's items, bit for bit); audio fed at 11025 Hz mono
// goes to it as it is, any other rate or channel count through swresample with fpcalc's filter.
//
// Speed variants: audio declared at rate R/s instead of R is heard slowed down by s.
// Fingerprinting one decode at several declared rates yields, for a copy that was sped up by s
// (pitch and tempo together, like a tape played fast), a variant in which the change is undone;
// item j of that variant lies at j·kItemSeconds/s in the audio fed. The fingerprint service uses
// this to match pitched and sped-up copies.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct SwrContext;

namespace plyr::media {

// Items per second and seconds per item of a TEST2 fingerprint.
inline constexpr int kChromaprintRate = 11025;
inline constexpr int kChromaprintItemSamples = 1365;
inline constexpr double kItemSeconds = static_cast<double>(kChromaprintItemSamples) / kChromaprintRate;
// Audio an item describes reaches this far past the item's own start (the classifiers' 16-frame
// window): n items cover n·kItemSeconds + kItemSpanSeconds of audio.
inline constexpr double kItemSpanSeconds = 28666.0 / kChromaprintRate - kItemSeconds;
// The item Chromaprint emits for digital silence.
inline constexpr std::uint32_t kSilenceItem = 627964279;

using FingerprintItems = std::vector<std::uint32_t>;

// Sets a resampler to the filter fpcalc gives swresample (16 taps, 8 phase bits, cutoff 0.8):
// audio resampled with it to 11025 Hz fingerprints exactly as fpcalc does.
void ApplyChromaprintResamplerSettings(SwrContext* swr);

// Computes a fingerprint, for each requested speed, of audio fed in pieces. Not thread-safe; one
// per thread. Contract: Start, then Feed any number of times, then Finish; Start again to reuse.
class Fingerprinter {
 public:
  // `speeds`: 1.0 is the audio as it is; 1.02 undoes a 2 % speed-up. Empty means {1.0}.
  explicit Fingerprinter(std::vector<double> speeds = {1.0});
  ~Fingerprinter();
  Fingerprinter(const Fingerprinter&) = delete;
  Fingerprinter& operator=(const Fingerprinter&) = delete;

  Status Start(int sample_rate, int channels);
  // Interleaved samples, all channels: size is a multiple of the channel count.
  Status Feed(std::span<const std::int16_t> samples);
  // One fingerprint per speed, in the order given to the constructor.
  StatusOr<std::vector<FingerprintItems>> Finish();

  const std::vector<double>& speeds() const { return speeds_; }

 private:
  struct Context;
  std::vector<double> speeds_;
  std::vector<std::unique_ptr<Context>> contexts_;
  int channels_ = 0;
};

// Parses a list of speeds such as "1,0.98,1.02" (each in [0.8, 1.25], none twice, at most 8) into
// the order Fingerprinter takes: 1.0 first, listed or not, then the others as listed.
StatusOr<std::vector<double>> ParseSpeedList(std::string_view text);
// "1,0.98,1.02": the list as ParseSpeedList reads it back.
std::string SpeedListText(const std::vector<double>& speeds);

// The compressed, URL-safe base64 form (`fpcalc` output, the AcoustID API's `fingerprint`).
std::string EncodeFingerprint(std::span<const std::uint32_t> items);
// Parses that form. InvalidArgument when `text` is not a TEST2 fingerprint, or is longer than
// `max_items` items once decoded.
StatusOr<FingerprintItems> DecodeFingerprint(std::string_view text, std::size_t max_items);

}  // namespace plyr::media
