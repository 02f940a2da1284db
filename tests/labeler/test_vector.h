// The design notes' test vector (atproto-labeler.md section 2.5): the label, unsigned, and its k256
// signature with the vector key. Shared by the encoding and the JSON tests.
#pragma once

#include <string>

#include "labeler/label.h"

namespace plyr::labeler::testing {

inline constexpr const char* kVectorK256Sig =
    "1d2e8143b199b8129fe5cf32cf4fd6531f1886861ff48ca6783ee7d1d93f2ecd"
    "1e4d2dc3e971ede0fc5571d3903876f29f9df77f07f0078926c93161131fc979";

inline Label VectorLabel() {
  Label label;
  label.src = "did:plc:ar7c4by46qjdydhdevvrndac";
  label.uri = "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3l3pte3p2e325";
  label.val = "spam";
  label.cts = "2024-10-01T12:00:00.000Z";
  return label;
}

}  // namespace plyr::labeler::testing
