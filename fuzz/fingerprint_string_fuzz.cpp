// Any text as a compressed fingerprint: refused or decoded, never a crash or a huge allocation,
// and what decodes encodes back to a string that decodes to the same items.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/media/chromaprint.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto items = plyr::media::DecodeFingerprint(text, 1 << 16);
  if (!items.ok()) return 0;
  auto again = plyr::media::DecodeFingerprint(plyr::media::EncodeFingerprint(*items), 1 << 16);
  if (!again.ok() || *again != *items) std::abort();
  return 0;
}
