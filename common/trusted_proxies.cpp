#include "common/trusted_proxies.h"

#include <algorithm>
#include <optional>

#include "common/comma_list.h"

namespace plyr {

namespace asio = boost::asio;

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// An IPv4 client reaching an IPv6 socket shows as ::ffff:a.b.c.d: the IPv4 address it is.
asio::ip::address Unmapped(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::address(asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()));
  }
  return address;
}

std::optional<asio::ip::address> ParseAddress(std::string_view text) {
  text = Trim(text);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  boost::system::error_code ec;
  auto address = asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  return Unmapped(address);
}

}  // namespace

StatusOr<TrustedProxies> TrustedProxies::Parse(std::string_view list) {
  TrustedProxies proxies;
  for (std::string_view entry : SplitCommaList(list)) {
    entry = Trim(entry);
    if (entry.empty()) continue;
    boost::system::error_code ec;
    const std::string text(entry);
    if (text.find('/') == std::string::npos) {
      auto address = ParseAddress(text);
      if (!address) return Status(StatusCode::kInvalidArgument, "not an IP address or network: " + text);
      if (address->is_v4()) {
        proxies.v4_.emplace_back(address->to_v4(), 32);
      } else {
        proxies.v6_.emplace_back(address->to_v6(), 128);
      }
      continue;
    }
    if (auto v4 = asio::ip::make_network_v4(text, ec); !ec) {
      proxies.v4_.push_back(v4.canonical());
      continue;
    }
    if (auto v6 = asio::ip::make_network_v6(text, ec); !ec) {
      proxies.v6_.push_back(v6.canonical());
      continue;
    }
    return Status(StatusCode::kInvalidArgument, "not an IP address or network: " + text);
  }
  return proxies;
}

bool TrustedProxies::Contains(const asio::ip::address& raw) const {
  const auto address = Unmapped(raw);
  if (address.is_v4()) {
    const auto v4 = address.to_v4();
    return std::any_of(v4_.begin(), v4_.end(), [&](const asio::ip::network_v4& n) {
      return (v4.to_uint() & n.netmask().to_uint()) == n.network().to_uint();
    });
  }
  const auto v6 = address.to_v6();
  return std::any_of(v6_.begin(), v6_.end(), [&](const asio::ip::network_v6& n) {
    const auto bytes = v6.to_bytes();
    const auto network = n.network().to_bytes();
    const unsigned prefix = n.prefix_length();
    for (unsigned bit = 0; bit < prefix; ++bit) {
      const unsigned byte = bit / 8, mask = 0x80u >> (bit % 8);
      if ((bytes[byte] & mask) != (network[byte] & mask)) return false;
    }
    return true;
  });
}

asio::ip::address TrustedProxies::ClientAddress(const asio::ip::address& peer,
                                                const std::vector<std::string_view>& forwarded_for) const {
  if (!Contains(peer)) return peer;
  std::vector<std::string_view> hops;
  for (std::string_view field : forwarded_for) {
    for (std::string_view entry : SplitCommaList(field)) hops.push_back(entry);
  }
  asio::ip::address client = peer;
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    auto address = ParseAddress(*it);
    if (!address) break;
    client = *address;
    if (!Contains(client)) break;
  }
  return client;
}

}  // namespace plyr
