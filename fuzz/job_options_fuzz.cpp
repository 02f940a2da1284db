// A job's rendition ladder and fingerprint speeds as a caller writes them: refused or parsed,
// and what parses prints back to text that parses to the same thing.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/media/chromaprint.h"
#include "transcoder/rendition.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto ladder = plyr::transcoder::ParseLadder(text); ladder.ok()) {
    if (ladder->empty() || ladder->size() > 8) std::abort();
    auto again = plyr::transcoder::ParseLadder(plyr::transcoder::LadderText(*ladder));
    if (!again.ok() || plyr::transcoder::LadderText(*again) != plyr::transcoder::LadderText(*ladder)) std::abort();
  }
  if (auto speeds = plyr::media::ParseSpeedList(text); speeds.ok()) {
    if (speeds->empty() || speeds->front() != 1.0 || speeds->size() > 8) std::abort();
    for (double s : *speeds) {
      if (!(s >= 0.8 && s <= 1.25)) std::abort();
    }
  }
  return 0;
}
