#include "tests/labeler/labeler_fixture.h"

#include <openssl/evp.h>

namespace plyr::testing {

std::string DecodeBase64(std::string text) {
  while (text.size() % 4) text += '=';
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return {};
  std::size_t pad = 0;
  for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

labeler::Label LabelFromQueryJson(const boost::json::object& o) {
  labeler::Label label;
  label.src = std::string(o.at("src").as_string());
  label.uri = std::string(o.at("uri").as_string());
  label.val = std::string(o.at("val").as_string());
  label.cts = std::string(o.at("cts").as_string());
  if (o.contains("cid")) label.cid = std::string(o.at("cid").as_string());
  if (o.contains("exp")) label.exp = std::string(o.at("exp").as_string());
  if (o.contains("neg")) label.neg = o.at("neg").as_bool();
  label.sig = DecodeBase64(std::string(o.at("sig").as_object().at("$bytes").as_string()));
  return label;
}

}  // namespace plyr::testing
