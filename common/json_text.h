// JSON text for what leaves the process (HTTP bodies, command output).
//
// Boost.JSON 1.81 writes every double in exponent form ("duration": 2.0522E2); people and
// scripts reading a response expect 205.22. ToJsonText writes the same JSON with each double in
// its shortest round-trip decimal form (fmt's "{}": 205.22, 0.5, 1e+21), with ".0" on an
// integral one (205.0) so that it still reads back as a double, and a NaN or an infinity, which
// JSON cannot hold, as null. Strings are written by AppendJsonString below. A value without a
// double is Boost.JSON's own text.
#pragma once

#include <string>
#include <string_view>

#include <boost/json/value.hpp>

namespace plyr {

std::string ToJsonText(const boost::json::value& value);

// Appends `text` as a JSON string: quote, backslash and control characters escaped, valid UTF-8 as
// it is, and each byte that is not part of valid UTF-8 as U+FFFD (text from clients, such as a
// log line's request target, stays JSON whatever arrived).
void AppendJsonString(std::string& out, std::string_view text);

}  // namespace plyr
