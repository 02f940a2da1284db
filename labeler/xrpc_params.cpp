#include "labeler/xrpc_params.h"

#include <string>

#include "common/comma_list.h"
#include "labeler/label.h"

namespace plyr::labeler {

std::optional<std::int64_t> ParseNonNegative(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

StatusOr<LabelQuery> ParseQueryLabelsParams(const boost::urls::params_view& params) {
  auto invalid = [](std::string message) { return Status(StatusCode::kInvalidArgument, std::move(message)); };
  LabelQuery query;
  query.limit = kQueryLimitDefault;
  bool have_patterns = false;
  for (auto param : params) {
    if (param.key == "uriPatterns") {
      have_patterns = true;
      for (auto item : SplitCommaList(param.value)) query.uri_patterns.emplace_back(item);  // ATProto URIs hold no commas
    } else if (param.key == "sources") {
      for (auto item : SplitCommaList(param.value)) query.sources.emplace_back(item);
    } else if (param.key == "limit") {
      auto limit = ParseNonNegative(param.value);
      if (!limit || *limit < 1 || *limit > static_cast<std::int64_t>(kQueryLimitMax)) {
        return invalid("limit must be an integer from 1 to 250");
      }
      query.limit = static_cast<std::size_t>(*limit);
    } else if (param.key == "cursor") {
      auto cursor = ParseNonNegative(param.value);
      if (!cursor) return invalid("cursor must be a non-negative integer");
      query.after_seq = *cursor;
    }
  }
  if (!have_patterns || query.uri_patterns.empty()) return invalid("uriPatterns is required");
  for (const auto& pattern : query.uri_patterns) {
    auto star = pattern.find('*');
    if (star != std::string::npos && star + 1 != pattern.size()) {
      return invalid("a '*' in uriPatterns may only end a pattern (prefix match): " + pattern);
    }
  }
  for (const auto& source : query.sources) {
    if (auto e = CheckDid(source); !e.empty()) return invalid("sources: " + e);
  }
  return query;
}

}  // namespace plyr::labeler
