#include "common/did.h"

#include <cctype>
#include <cstddef>

namespace plyr {

bool IsPlausibleDid(std::string_view did) {
  if (did.size() < 8 || did.size() > 2048 || !did.starts_with("did:")) return false;
  auto method_end = did.find(':', 4);
  if (method_end == std::string_view::npos || method_end == 4 || method_end + 1 == did.size()) return false;
  for (std::size_t i = 4; i < method_end; ++i) {
    if (did[i] < 'a' || did[i] > 'z') return false;
  }
  for (char c : did.substr(method_end + 1)) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '%' || c == '-';
    if (!ok) return false;
  }
  return did.back() != ':';
}

}  // namespace plyr
