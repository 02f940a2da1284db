// Random identifiers and keys from the operating system's generator (libsodium's randombytes).
#pragma once

#include <cstddef>
#include <string>

namespace plyr {

// `bytes` random bytes as lowercase hex (2·bytes characters).
std::string RandomHex(std::size_t bytes);

}  // namespace plyr
