// A caller's label JSON (POST /v1/labels, /emit-label): any bytes that parse as JSON go through
// LabelFromInput, alone and as `labels` items, never crash, and what it accepts is a label the
// checks pass and the DRISL encoder signs.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/json.hpp>
// Boost.JSON compiled in (not linked) so the parser is instrumented too: coverage then guides
// mutations towards valid JSON.
#include <boost/json/src.hpp>

#include "labeler/label.h"
#include "labeler/label_cbor.h"

namespace {

void Check(const boost::json::value& input, std::string_view default_val) {
  using namespace plyr::labeler;
  auto label = LabelFromInput(input, default_val);
  if (!label.ok()) {
    if (label.status().message().empty()) std::abort();  // a refusal always says why
    return;
  }
  if (!CheckSubjectUri(label->uri).empty() || !CheckLabelValue(label->val).empty()) std::abort();
  if (label->cid && !CheckCid(*label->cid).empty()) std::abort();
  if (label->exp && !CheckDatetime(*label->exp).empty()) std::abort();
  label->src = "did:web:labeler.example";
  label->cts = "2026-12-02T00:00:00.000Z";
  label->sig.assign(64, '\x01');
  if (EncodeUnsignedLabel(*label).empty() || EncodeSignedLabel(*label).empty()) std::abort();
  (void)LabelToJson(*label);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  boost::system::error_code ec;
  const boost::json::value input =
      boost::json::parse(std::string_view(reinterpret_cast<const char*>(data), size), ec);
  if (ec) return 0;
  Check(input, {});
  Check(input, "copyright-violation");
  if (const auto* object = input.if_object()) {
    if (const auto* labels = object->if_contains("labels"); labels && labels->is_array()) {
      for (const auto& item : labels->as_array()) Check(item, {});
    }
  }
  return 0;
}
