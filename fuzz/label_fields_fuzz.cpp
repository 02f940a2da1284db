// Label input fields: every check answers (empty or a reason) for any bytes, never crashes.
#include <cstdint>
#include <string_view>

#include "labeler/label.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)plyr::labeler::CheckLabelValue(text);
  (void)plyr::labeler::CheckDid(text);
  (void)plyr::labeler::CheckSubjectUri(text);
  (void)plyr::labeler::CheckCid(text);
  (void)plyr::labeler::CheckDatetime(text);
  return 0;
}
