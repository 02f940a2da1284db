// The Range header against a representation length: never a crash, and what is served stays
// inside the representation, in ascending order, without overlap when there are several ranges.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "streamer/byte_range.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t length = 0;
  std::memcpy(&length, data, 8);
  length %= (1ull << 40);
  const std::string_view header(reinterpret_cast<const char*>(data + 8), size - 8);
  const auto decision = plyr::streamer::ResolveRange(header, length);
  std::uint64_t end_of_previous = 0;
  for (std::size_t i = 0; i < decision.ranges.size(); ++i) {
    const auto& r = decision.ranges[i];
    if (r.length == 0 || r.first + r.length > length) std::abort();
    if (decision.ranges.size() > 1 && i > 0 && r.first < end_of_previous) std::abort();
    end_of_previous = r.first + r.length;
  }
  return 0;
}
