// X-Forwarded-For and trusted-proxy lists of any bytes, and any log message in the JSON format:
// never a crash, and every JSON log line parses as one JSON object.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/json.hpp>

#include "common/log.h"
#include "common/trusted_proxies.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)plyr::TrustedProxies::Parse(text);
  static const plyr::TrustedProxies proxies = plyr::TrustedProxies::Parse("127.0.0.0/8,::1").value();
  (void)proxies.ClientAddress(boost::asio::ip::make_address("127.0.0.1"), {text});

  const std::string line = plyr::JsonLogLine(std::chrono::system_clock::time_point{}, "info", text);
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(line, ec);
  if (ec || !parsed.is_object() || line.find('\n') != std::string::npos) std::abort();
  return 0;
}
