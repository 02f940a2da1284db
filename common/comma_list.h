// Comma-separated lists in query values and settings ("mp3-320, opus-64", plyr.fm's
// "uriPatterns=a,b"): items are trimmed of spaces and empty ones dropped.
#pragma once

#include <string_view>
#include <vector>

namespace plyr {

// The items of `text`, as views into it.
std::vector<std::string_view> SplitCommaList(std::string_view text);

}  // namespace plyr
