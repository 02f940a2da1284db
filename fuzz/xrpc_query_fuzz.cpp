// queryLabels' query string of any bytes, as the server reads it from the request target:
// refused or parsed, and a parsed query keeps the limits the handler relies on.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/url/parse.hpp>

#include "labeler/xrpc_params.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string target = "/xrpc/com.atproto.label.queryLabels?" +
                             std::string(reinterpret_cast<const char*>(data), size);
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return 0;
  auto query = plyr::labeler::ParseQueryLabelsParams(url->params());
  if (!query.ok()) return 0;
  if (query->uri_patterns.empty() || query->limit < 1 || query->limit > plyr::labeler::kQueryLimitMax ||
      query->after_seq < 0) {
    std::abort();
  }
  for (const auto& pattern : query->uri_patterns) {
    const auto star = pattern.find('*');
    if (star != std::string::npos && star + 1 != pattern.size()) std::abort();
  }
  return 0;
}
