// The parameters of com.atproto.label.queryLabels, read from a request's query string.
//
//   uriPatterns  required; repeated or comma-separated; exact URIs, or prefixes ending in '*'
//   sources      optional DIDs (repeated or comma-separated)
//   limit        1-250, default 50
//   cursor       a seq: labels after it
// Unknown parameters are ignored, as XRPC servers do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include <boost/url/params_view.hpp>

#include "common/status.h"
#include "labeler/label_store.h"

namespace plyr::labeler {

inline constexpr std::size_t kQueryLimitMax = 250;
inline constexpr std::size_t kQueryLimitDefault = 50;

// The query, or InvalidArgument saying which parameter is wrong and why.
StatusOr<LabelQuery> ParseQueryLabelsParams(const boost::urls::params_view& params);

// A non-negative decimal integer of at most 18 digits (a seq, a limit), or nullopt.
std::optional<std::int64_t> ParseNonNegative(std::string_view text);

}  // namespace plyr::labeler
