// Any bytes as a stream ticket: never a crash, and never accepted (nothing here holds the key).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "streamer/stream_ticket.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const plyr::streamer::TicketKeyPair keys = plyr::streamer::GenerateTicketKeyPair();
  static const plyr::streamer::TicketVerifier verifier(keys.public_key, 86400);
  const std::string_view ticket(reinterpret_cast<const char*>(data), size);
  if (verifier.Verify(ticket, "0123456789abcdef", 1'800'000'000).ok) std::abort();
  return 0;
}
