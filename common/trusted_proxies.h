// TrustedProxies: which peers may tell us the client's address in X-Forwarded-For.
//
// Behind a reverse proxy every connection comes from the proxy; the proxy names the client in
// X-Forwarded-For, appending the address it saw to what the request already carried. Only the
// entries added by proxies we trust mean anything (a client can write any X-Forwarded-For it
// likes), so the client is found walking the header from the right: past every trusted address,
// the first untrusted one is the client. A peer that is not trusted is the client itself.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

#include "common/status.h"

namespace plyr {

class TrustedProxies {
 public:
  TrustedProxies() = default;  // trusts nobody

  // "127.0.0.1, 10.0.0.0/8, ::1, fd00::/8": addresses and networks, comma-separated; empty is
  // nobody. InvalidArgument naming the entry that is neither.
  static StatusOr<TrustedProxies> Parse(std::string_view list);

  bool empty() const { return v4_.empty() && v6_.empty(); }
  bool Contains(const boost::asio::ip::address& address) const;

  // The client's address for a request from `peer` with these X-Forwarded-For values (every
  // occurrence of the field, in order). Unparsable entries end the walk: the client is then the
  // nearest address before them that was read.
  boost::asio::ip::address ClientAddress(const boost::asio::ip::address& peer,
                                         const std::vector<std::string_view>& forwarded_for) const;

 private:
  std::vector<boost::asio::ip::network_v4> v4_;
  std::vector<boost::asio::ip::network_v6> v6_;
};

}  // namespace plyr
