// JSON text for what leaves the process (HTTP bodies, command output).
//
// Boost.JSON 1.81 writes every double in exponent form ("duration": 2.0522E2); people and
// scripts reading a response expect 205.22. ToJsonText writes the same JSON with each double in
// its shortest round-trip decimal form (fmt's "{}": 205.22, 0.5, 1e+21), with ".0" on an
// integral one (205.0) so that it still reads back as a double, and a NaN or an infinity, which JSON cannot hold, as null. Strings are
// escaped as Boost.JSON escapes them: quote, backslash and control characters; UTF-8 as it is.
#pragma once

#include <string>

#include <boost/json/value.hpp>

namespace plyr {

std::string ToJsonText(const boost::json::value& value);

}  // namespace plyr
