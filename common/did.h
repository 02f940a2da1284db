// The shape of a DID as plyr's services accept it from their callers (a track's owner, a
// viewer): "did:" + a lower-case method + ":" + an identifier of [A-Za-z0-9._:%-], not ending
// in ':', 8 to 2048 characters (the W3C DID syntax, which did:plc and did:web satisfy). It says
// nothing of whether the DID resolves.
#pragma once

#include <string_view>

namespace plyr {

bool IsPlausibleDid(std::string_view did);

}  // namespace plyr
