// DRISL (deterministic DAG-CBOR) encoding of labels and of subscribeLabels stream frames.
//
// Encoding goes through libcbor; this file only decides the canonical shape: definite lengths,
// shortest-form heads, map keys sorted length-first then bytewise (for the 3-letter label keys:
// cid, cts, exp, neg, sig, src, uri, val, ver), no nulls, no floats.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "labeler/label.h"

namespace plyr::labeler {

// The bytes that get signed: the label without `sig`, with `ver` 1.
std::string EncodeUnsignedLabel(const Label& label);
// The label as served in a stream frame: the unsigned map plus `sig` (a 64-byte byte string).
std::string EncodeSignedLabel(const Label& label);

// One subscribeLabels message: the header {t: "#labels", op: 1} followed by the body
// {seq, labels: [label]}, where `signed_label_cbor` is EncodeSignedLabel's output (copied in as
// is). Cheap (no item tree), since replay calls it once per stored label.
std::string EncodeLabelsFrame(std::int64_t seq, std::string_view signed_label_cbor);
// An error message: header {op: -1} then {error, message?} (message omitted when empty).
std::string EncodeErrorFrame(std::string_view error, std::string_view message);
// An info message: header {t: "#info", op: 1} then {name, message?}.
std::string EncodeInfoFrame(std::string_view name, std::string_view message);

}  // namespace plyr::labeler
