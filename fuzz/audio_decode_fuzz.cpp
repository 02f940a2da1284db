// Any bytes as an uploaded audio file: FFmpeg probes and decodes them (fingerprint/audio_fingerprint,
// the same probing as the transcoder), at two speeds. Never a crash or a hang; a refusal always
// says why; an accepted file has a print per speed and a duration within the limit.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" {
#include <libavutil/log.h>
}

#include "fingerprint/audio_fingerprint.h"

namespace {

std::string path;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  av_log_set_level(AV_LOG_QUIET);
  path = "/tmp/audio_decode_fuzz." + std::to_string(::getpid());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);

  plyr::fingerprint::AudioFingerprintOptions options;
  options.speeds = {1.0, 1.02};
  options.max_duration_ms = 600000;
  auto result = plyr::fingerprint::FingerprintFile(path, options);
  if (!result.ok()) {
    if (result.status().message().empty()) std::abort();
  } else if (result->by_speed.size() != 2 || result->duration_s < 0 || result->duration_s > 600.1) {
    std::abort();
  }
  std::remove(path.c_str());
  return 0;
}
