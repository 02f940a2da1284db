#include "labeler/label_cbor.h"

#include <cbor.h>

#include <cstdlib>
#include <memory>
#include <new>

namespace plyr::labeler {

namespace {

// libcbor items are reference counted; an Item owns one reference. Containers take their own
// reference when an item is added, so the Item may go out of scope right after.
struct ItemUnref {
  void operator()(cbor_item_t* item) const { cbor_decref(&item); }
};
using Item = std::unique_ptr<cbor_item_t, ItemUnref>;

struct FreeBuffer {
  void operator()(unsigned char* p) const { std::free(p); }
};

// libcbor reports allocation failure as NULL; treat it as the standard library would.
Item Own(cbor_item_t* item) {
  if (item == nullptr) throw std::bad_alloc();
  return Item(item);
}

Item Text(std::string_view s) { return Own(cbor_build_stringn(s.data(), s.size())); }

Item Bytes(std::string_view b) {
  return Own(cbor_build_bytestring(reinterpret_cast<cbor_data>(b.data()), b.size()));
}

// libcbor writes the width it is given, so pick the narrowest that fits: DRISL wants the
// shortest head.
Item Uint(std::uint64_t v) {
  if (v <= 0xff) return Own(cbor_build_uint8(static_cast<std::uint8_t>(v)));
  if (v <= 0xffff) return Own(cbor_build_uint16(static_cast<std::uint16_t>(v)));
  if (v <= 0xffffffff) return Own(cbor_build_uint32(static_cast<std::uint32_t>(v)));
  return Own(cbor_build_uint64(v));
}

// CBOR stores a negative n as -1 - n in major type 1.
Item NegInt(std::int64_t v) {
  const auto m = static_cast<std::uint64_t>(-(v + 1));
  if (m <= 0xff) return Own(cbor_build_negint8(static_cast<std::uint8_t>(m)));
  if (m <= 0xffff) return Own(cbor_build_negint16(static_cast<std::uint16_t>(m)));
  if (m <= 0xffffffff) return Own(cbor_build_negint32(static_cast<std::uint32_t>(m)));
  return Own(cbor_build_negint64(m));
}

Item Int(std::int64_t v) { return v >= 0 ? Uint(static_cast<std::uint64_t>(v)) : NegInt(v); }

// A definite map whose keys the caller adds already in canonical order (libcbor does not sort).
class Map {
 public:
  explicit Map(std::size_t size) : map_(Own(cbor_new_definite_map(size))) {}

  Map& Put(std::string_view key, const Item& value) {
    const Item k = Text(key);
    // Fails only if the map is already full, a bug here, or on allocation failure.
    if (!cbor_map_add(map_.get(), cbor_pair{k.get(), value.get()})) throw std::bad_alloc();
    return *this;
  }

  const cbor_item_t* get() const { return map_.get(); }

 private:
  Item map_;
};

// Serializes into a buffer of `size_hint` bytes (an upper bound the caller computed), falling
// back to libcbor's growing allocator if the hint was short.
void AppendSerialized(const cbor_item_t* item, std::size_t size_hint, std::string* out) {
  const std::size_t start = out->size();
  out->resize(start + size_hint);
  const std::size_t n =
      cbor_serialize(item, reinterpret_cast<unsigned char*>(out->data() + start), size_hint);
  if (n != 0) {
    out->resize(start + n);
    return;
  }
  out->resize(start);
  unsigned char* raw = nullptr;
  std::size_t capacity = 0;
  const std::size_t written = cbor_serialize_alloc(item, &raw, &capacity);
  const std::unique_ptr<unsigned char, FreeBuffer> buffer(raw);
  if (written == 0) throw std::bad_alloc();
  out->append(reinterpret_cast<const char*>(raw), written);
}

// Worst case for a text/byte string: a 9-byte head plus the payload.
constexpr std::size_t kMaxHead = 9;
std::size_t StringBound(std::size_t n) { return kMaxHead + n; }

std::string EncodeLabel(const Label& label, bool with_sig) {
  std::size_t fields = 5;  // cts, src, uri, val, ver
  std::size_t bound = kMaxHead;
  for (std::string_view s : {std::string_view(label.cts), std::string_view(label.src),
                             std::string_view(label.uri), std::string_view(label.val)}) {
    bound += StringBound(3) + StringBound(s.size());
  }
  bound += StringBound(3) + 1;  // ver: 1
  if (label.cid) ++fields, bound += StringBound(3) + StringBound(label.cid->size());
  if (label.exp) ++fields, bound += StringBound(3) + StringBound(label.exp->size());
  if (label.neg) ++fields, bound += StringBound(3) + 1;
  if (with_sig) ++fields, bound += StringBound(3) + StringBound(label.sig.size());

  // DRISL key order: length first, then bytewise. Every label key has three letters, so this is
  // plain alphabetical order.
  Map map(fields);
  if (label.cid) map.Put("cid", Text(*label.cid));
  map.Put("cts", Text(label.cts));
  if (label.exp) map.Put("exp", Text(*label.exp));
  // A false `neg` is left out (Ozone's rule), so the signed bytes match what verifiers re-encode.
  if (label.neg) map.Put("neg", Own(cbor_build_bool(true)));
  if (with_sig) map.Put("sig", Bytes(label.sig));
  map.Put("src", Text(label.src));
  map.Put("uri", Text(label.uri));
  map.Put("val", Text(label.val));
  map.Put("ver", Uint(1));

  std::string out;
  AppendSerialized(map.get(), bound, &out);
  return out;
}

std::string Serialize(const Map& map, std::size_t size_hint) {
  std::string out;
  AppendSerialized(map.get(), size_hint, &out);
  return out;
}

// {t: "#labels", op: 1}, built once: every frame starts with these same 15 bytes.
const std::string& LabelsHeader() {
  static const std::string header = [] {
    Map map(2);
    map.Put("t", Text("#labels")).Put("op", Uint(1));
    return Serialize(map, 32);
  }();
  return header;
}

const std::string& InfoHeader() {
  static const std::string header = [] {
    Map map(2);
    map.Put("t", Text("#info")).Put("op", Uint(1));
    return Serialize(map, 32);
  }();
  return header;
}

const std::string& ErrorHeader() {
  static const std::string header = [] {
    Map map(1);
    map.Put("op", Int(-1));  // an error header carries no `t`
    return Serialize(map, 16);
  }();
  return header;
}

// The body {error|name: ..., message?: ...}: both key pairs are already in length order.
std::string AppendNamedBody(std::string frame, std::string_view key, std::string_view value,
                            std::string_view message) {
  Map map(message.empty() ? 1 : 2);
  map.Put(key, Text(value));
  if (!message.empty()) map.Put("message", Text(message));
  AppendSerialized(map.get(), kMaxHead + StringBound(key.size()) + StringBound(value.size()) +
                                  StringBound(7) + StringBound(message.size()),
                   &frame);
  return frame;
}

}  // namespace

std::string EncodeUnsignedLabel(const Label& label) { return EncodeLabel(label, false); }

std::string EncodeSignedLabel(const Label& label) { return EncodeLabel(label, true); }

std::string EncodeLabelsFrame(std::int64_t seq, std::string_view signed_label_cbor) {
  // Replay sends one of these per stored label, so no item tree here: libcbor's head encoders
  // write the body prefix {seq: <seq>, labels: [ into a stack buffer, and the stored signed
  // label bytes are spliced in after it unchanged.
  unsigned char prefix[32];
  std::size_t n = 0;
  auto text = [&](std::string_view s) {
    n += cbor_encode_string_start(s.size(), prefix + n, sizeof prefix - n);
    for (char c : s) prefix[n++] = static_cast<unsigned char>(c);
  };
  n += cbor_encode_map_start(2, prefix + n, sizeof prefix - n);
  text("seq");  // "seq" < "labels": shorter key first
  // cbor_encode_uint/negint choose the shortest head for the value.
  n += seq >= 0 ? cbor_encode_uint(static_cast<std::uint64_t>(seq), prefix + n, sizeof prefix - n)
                : cbor_encode_negint(static_cast<std::uint64_t>(-(seq + 1)), prefix + n, sizeof prefix - n);
  text("labels");
  n += cbor_encode_array_start(1, prefix + n, sizeof prefix - n);

  const std::string& header = LabelsHeader();
  std::string frame;
  frame.reserve(header.size() + n + signed_label_cbor.size());
  frame.append(header);
  frame.append(reinterpret_cast<const char*>(prefix), n);
  frame.append(signed_label_cbor);
  return frame;
}

std::string EncodeErrorFrame(std::string_view error, std::string_view message) {
  return AppendNamedBody(ErrorHeader(), "error", error, message);
}

std::string EncodeInfoFrame(std::string_view name, std::string_view message) {
  return AppendNamedBody(InfoHeader(), "name", name, message);
}

}  // namespace plyr::labeler
