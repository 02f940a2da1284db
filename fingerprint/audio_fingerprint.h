// Fingerprints an audio file: FFmpeg decodes whatever the file holds (found by probing its bytes,
// as the transcoder does), swresample makes 11025 Hz mono 16-bit, and Chromaprint fingerprints
// that at each requested speed (common/media/chromaprint.h explains speed variants).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/media/chromaprint.h"
#include "common/status.h"

namespace plyr::fingerprint {

struct AudioFingerprintOptions {
  std::vector<double> speeds = {1.0};
  // Longer audio fails with ResourceExhausted; 0: no limit.
  std::int64_t max_duration_ms = 0;
  // Fingerprint only the first this many ms (like fpcalc -length); 0: all of it.
  std::int64_t max_fingerprint_ms = 0;
};

struct AudioFingerprint {
  double duration_s = 0;  // decoded samples / rate
  std::string codec;
  std::int64_t decode_errors = 0;  // damaged packets skipped
  std::string title, artist;       // the file's tags, when it has them
  // One fingerprint per speed of the options, in that order.
  std::vector<media::FingerprintItems> by_speed;
};

// Errors: InvalidArgument for a file that is not audio we can read (saying what was wrong),
// Unimplemented for a codec FFmpeg cannot decode, ResourceExhausted past max_duration_ms.
StatusOr<AudioFingerprint> FingerprintFile(const std::filesystem::path& path, const AudioFingerprintOptions& options);

}  // namespace plyr::fingerprint
