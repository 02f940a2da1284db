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

// Reads #labels frames until `count` arrived (or a timeout); returns their seqs, and the frames.
std::vector<std::int64_t> ReadSeqs(WsClient& ws, std::size_t count, std::vector<std::string>* frames,
                                   std::chrono::milliseconds timeout) {
  std::vector<std::int64_t> seqs;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  static const std::string kHeader("\xa2\x61t\x67#labels\x62op\x01", 15);
  while (seqs.size() < count && std::chrono::steady_clock::now() < deadline) {
    WsMessage m;
    auto status = ws.Read(m, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (status != WsClient::Status::kMessage) break;
    if (m.opcode != 2) continue;
    if (!m.payload.starts_with(kHeader)) break;
    // Body: a2 63 "seq" <uint> 66 "labels" ...; the seq head follows the 4 bytes a2 63 73 65 71.
    std::size_t at = kHeader.size() + 5;
    auto head = static_cast<unsigned char>(m.payload[at]);
    std::int64_t seq = 0;
    if (head < 0x18) {
      seq = head;
    } else {
      int bytes = 1 << (head - 0x18);
      for (int i = 1; i <= bytes; ++i) seq = (seq << 8) | static_cast<unsigned char>(m.payload[at + i]);
    }
    seqs.push_back(seq);
    if (frames) frames->push_back(m.payload);
  }
  return seqs;
}

}  // namespace plyr::testing
