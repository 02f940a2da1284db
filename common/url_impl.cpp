// Boost.URL has no Debian library package in 1.81: it is compiled here, once.
#include <boost/url/src.hpp>
