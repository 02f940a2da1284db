// Namespace aliases shared by every networking file. Kept tiny on purpose: it pulls no headers
// beyond the forward declarations those aliases need.
#pragma once

namespace boost::asio {}
namespace boost::beast::http {}
namespace boost::json {}
namespace boost::system {}

namespace plyr {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
namespace sys = boost::system;
}  // namespace plyr
