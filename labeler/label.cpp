#include "labeler/label.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>

namespace plyr::labeler {

namespace {

constexpr std::size_t kMaxLabelValueBytes = 128;  // Lexicon maxLength, counted in UTF-8 bytes
constexpr std::size_t kMaxDidLength = 2048;
constexpr std::size_t kMaxUriLength = 8192;  // Lexicon `uri` format limit (8 KB)
constexpr std::size_t kMaxHandleLength = 253;
constexpr std::size_t kMaxNsidLength = 317;
constexpr std::size_t kMaxRecordKeyLength = 512;
constexpr std::size_t kMaxDatetimeLength = 64;  // the reference validator's cap

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlpha(char c) { return IsLower(c) || (c >= 'A' && c <= 'Z'); }
bool IsAlnum(char c) { return IsAlpha(c) || IsDigit(c); }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Decodes one UTF-8 sequence at text[*pos], advancing *pos. Returns -1 for anything RFC 3629
// forbids: stray continuation bytes, truncation, overlong forms, surrogates, > U+10FFFF.
long DecodeUtf8(std::string_view text, std::size_t* pos) {
  const auto lead = static_cast<unsigned char>(text[*pos]);
  std::size_t extra;
  long cp;
  long min;
  if (lead < 0x80) {
    ++*pos;
    return lead;
  } else if ((lead & 0xe0) == 0xc0) {
    extra = 1, cp = lead & 0x1f, min = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    extra = 2, cp = lead & 0x0f, min = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    extra = 3, cp = lead & 0x07, min = 0x10000;
  } else {
    return -1;
  }
  if (text.size() - *pos <= extra) return -1;
  for (std::size_t i = 1; i <= extra; ++i) {
    const auto b = static_cast<unsigned char>(text[*pos + i]);
    if ((b & 0xc0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
  *pos += extra + 1;
  return cp;
}

// Control characters (Cc) and the Unicode White_Space property: a label value is an identifier,
// and an invisible or spacing character in it only makes two values look alike.
bool IsSpaceOrControl(long cp) {
  if (cp <= 0x20 || (cp >= 0x7f && cp <= 0xa0)) return true;
  switch (cp) {
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200a;
  }
}

// One DNS-style segment of a handle or an NSID authority: 1..63 of [A-Za-z0-9-], no hyphen at
// either end.
bool IsDomainSegment(std::string_view seg) {
  if (seg.empty() || seg.size() > 63 || seg.front() == '-' || seg.back() == '-') return false;
  for (char c : seg) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

std::string CheckHandle(std::string_view handle) {
  if (handle.size() > kMaxHandleLength) return "handle is longer than 253 characters";
  std::size_t segments = 0;
  std::string_view last;
  for (std::string_view rest = handle;;) {
    const auto dot = rest.find('.');
    last = rest.substr(0, dot);
    if (!IsDomainSegment(last)) return "handle segment is not a valid domain label";
    ++segments;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (segments < 2) return "handle needs at least two segments";
  if (IsDigit(last.front())) return "handle's top-level domain starts with a digit";
  return {};
}

// NSID: a reversed domain authority (at least two segments) and a name segment [A-Za-z][A-Za-z0-9]*.
std::string CheckNsid(std::string_view nsid) {
  if (nsid.size() > kMaxNsidLength) return "collection NSID is longer than 317 characters";
  const auto last_dot = nsid.rfind('.');
  if (last_dot == std::string_view::npos) return "collection is not an NSID";
  const std::string_view name = nsid.substr(last_dot + 1);
  if (name.empty() || name.size() > 63 || !IsAlpha(name.front())) return "collection NSID has a bad name segment";
  for (char c : name) {
    if (!IsAlnum(c)) return "collection NSID has a bad name segment";
  }
  std::size_t segments = 0;
  for (std::string_view rest = nsid.substr(0, last_dot);;) {
    const auto dot = rest.find('.');
    const std::string_view seg = rest.substr(0, dot);
    if (!IsDomainSegment(seg)) return "collection NSID has a bad domain segment";
    if (segments == 0 && IsDigit(seg.front())) return "collection NSID starts with a digit";
    ++segments;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (segments < 2) return "collection NSID needs at least three segments";
  return {};
}

std::string CheckRecordKey(std::string_view rkey) {
  if (rkey.empty() || rkey.size() > kMaxRecordKeyLength) return "record key must be 1..512 characters";
  if (rkey == "." || rkey == "..") return "record key may not be \".\" or \"..\"";
  for (char c : rkey) {
    if (!IsAlnum(c) && c != '.' && c != '-' && c != '_' && c != ':' && c != '~') {
      return "record key has a character outside [A-Za-z0-9._:~-]";
    }
  }
  return {};
}

// Parses exactly `n` digits at s[pos..], or returns -1.
int Digits(std::string_view s, std::size_t pos, std::size_t n) {
  if (pos + n > s.size()) return -1;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!IsDigit(s[pos + i])) return -1;
    v = v * 10 + (s[pos + i] - '0');
  }
  return v;
}

}  // namespace

std::string CheckLabelValue(std::string_view val) {
  if (val.empty()) return "label value is empty";
  if (val.size() > kMaxLabelValueBytes) return "label value is longer than 128 bytes";
  for (std::size_t pos = 0; pos < val.size();) {
    const long cp = DecodeUtf8(val, &pos);
    if (cp < 0) return "label value is not valid UTF-8";
    if (IsSpaceOrControl(cp)) return "label value contains whitespace or a control character";
  }
  return {};
}

std::string CheckDid(std::string_view did) {
  if (did.size() > kMaxDidLength) return "DID is longer than 2048 characters";
  if (!did.starts_with("did:")) return "DID must start with \"did:\"";
  std::size_t pos = 4;
  while (pos < did.size() && IsLower(did[pos])) ++pos;
  if (pos == 4 || pos >= did.size() || did[pos] != ':') return "DID method must be lower-case letters";
  const std::string_view id = did.substr(pos + 1);
  if (id.empty()) return "DID has an empty identifier";
  for (std::size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (c == '%') {
      // W3C DID syntax: '%' only as the start of a percent-encoded octet.
      if (i + 2 >= id.size() || !IsHex(id[i + 1]) || !IsHex(id[i + 2])) {
        return "DID has a '%' not followed by two hex digits";
      }
      i += 2;
      continue;
    }
    if (!IsAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-') return "DID has a character outside [A-Za-z0-9._:%-]";
  }
  if (id.back() == ':') return "DID may not end with ':'";
  return {};
}

std::string CheckSubjectUri(std::string_view uri) {
  if (uri.size() > kMaxUriLength) return "subject URI is longer than 8192 characters";
  if (uri.starts_with("did:")) return CheckDid(uri);
  if (!uri.starts_with("at://")) return "subject must be an at:// URI or a DID";
  std::string_view rest = uri.substr(5);
  if (rest.find_first_of("?#") != std::string_view::npos) return "subject at:// URI may not have a query or fragment";

  auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  if (authority.starts_with("did:")) {
    if (auto why = CheckDid(authority); !why.empty()) return "subject authority: " + why;
  } else if (auto why = CheckHandle(authority); !why.empty()) {
    return "subject authority: " + why;
  }
  if (slash == std::string_view::npos) return {};

  rest.remove_prefix(slash + 1);
  slash = rest.find('/');
  if (auto why = CheckNsid(rest.substr(0, slash)); !why.empty()) return "subject " + why;
  if (slash == std::string_view::npos) return {};

  const std::string_view rkey = rest.substr(slash + 1);
  if (rkey.find('/') != std::string_view::npos) return "subject at:// URI has too many path segments";
  if (auto why = CheckRecordKey(rkey); !why.empty()) return "subject " + why;
  return {};
}

std::string CheckCid(std::string_view cid) {
  if (cid.starts_with("Qm")) {
    // CIDv0: a bare base58btc sha2-256 multihash, always 46 characters.
    if (cid.size() != 46) return "CIDv0 must be 46 characters";
    for (char c : cid) {
      if (!IsAlnum(c) || c == '0' || c == 'O' || c == 'I' || c == 'l') return "CIDv0 is not base58btc";
    }
    return {};
  }
  if (!cid.starts_with('b')) return "CID must be CIDv1 base32 ('b...') or CIDv0 ('Qm...')";
  // A sha2-256 CIDv1 is 59 characters; leave room for longer hashes, refuse anything absurd.
  if (cid.size() < 8 || cid.size() > 256) return "CIDv1 has an implausible length";
  for (char c : cid.substr(1)) {
    if (!IsLower(c) && !(c >= '2' && c <= '7')) return "CIDv1 is not lower-case base32";
  }
  return {};
}

std::string CheckDatetime(std::string_view s) {
  if (s.size() > kMaxDatetimeLength) return "datetime is longer than 64 characters";
  const int year = Digits(s, 0, 4);
  const int month = Digits(s, 5, 2);
  const int day = Digits(s, 8, 2);
  const int hour = Digits(s, 11, 2);
  const int minute = Digits(s, 14, 2);
  const int second = Digits(s, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 || s[4] != '-' || s[7] != '-' ||
      s[13] != ':' || s[16] != ':') {
    return "datetime must look like YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)";
  }
  if (s[10] != 'T') return "datetime needs an upper-case 'T' between date and time";
  // The reference validator refuses dates this close to year zero; JS Date mishandles them.
  if (year < 10) return "datetime year is too close to zero";
  const std::chrono::year_month_day ymd{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return "datetime has no such calendar date";
  // Second 60 (a leap second) is RFC 3339 but JS Date rejects it, so a client would too.
  if (hour > 23 || minute > 59 || second > 59) return "datetime has an out-of-range time of day";

  std::size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    const std::size_t start = ++pos;
    while (pos < s.size() && IsDigit(s[pos])) ++pos;
    if (pos == start) return "datetime has an empty fraction";
  }
  const std::string_view tz = s.substr(pos);
  if (tz == "Z") return {};
  if (tz.empty()) return "datetime needs a timezone (Z or +hh:mm)";
  if (tz.size() != 6 || (tz[0] != '+' && tz[0] != '-') || tz[3] != ':') {
    return "datetime timezone must be 'Z' or +hh:mm / -hh:mm";
  }
  const int tz_hour = Digits(tz, 1, 2);
  const int tz_minute = Digits(tz, 4, 2);
  if (tz_hour < 0 || tz_minute < 0 || tz_hour > 23 || tz_minute > 59) return "datetime has a bad timezone offset";
  // RFC 3339 gives -00:00 the meaning "offset unknown"; ATProto refuses it.
  if (tz == "-00:00") return "datetime timezone -00:00 is not allowed";
  return {};
}

std::string NowDatetime() {
  using namespace std::chrono;
  const auto now = floor<milliseconds>(system_clock::now());
  const auto days = floor<std::chrono::days>(now);
  const year_month_day ymd{days};
  const hh_mm_ss hms{now - days};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  return buf;
}

StatusOr<Label> LabelFromInput(const boost::json::value& input, std::string_view default_val) {
  const auto* object = input.if_object();
  if (!object) return Status(StatusCode::kInvalidArgument, "each label must be a JSON object");
  const auto refuse = [](std::string message) { return Status(StatusCode::kInvalidArgument, std::move(message)); };
  // A string member into `out`; empty when fine (absent or null counts as fine unless required).
  auto text = [&](std::string_view key, std::string& out, bool required) -> std::string {
    const auto* v = object->if_contains(key);
    if (!v || v->is_null()) return required ? fmt::format("`{}` is required", key) : std::string();
    if (!v->is_string()) return fmt::format("`{}` must be a string", key);
    out = std::string(v->get_string());
    return {};
  };
  Label label;
  if (auto e = text("uri", label.uri, true); !e.empty()) return refuse(e);
  if (auto e = CheckSubjectUri(label.uri); !e.empty()) return refuse("uri: " + e);
  if (auto e = text("val", label.val, default_val.empty()); !e.empty()) return refuse(e);
  if (label.val.empty()) label.val = std::string(default_val);
  if (auto e = CheckLabelValue(label.val); !e.empty()) return refuse("val: " + e);
  std::string cid;
  if (auto e = text("cid", cid, false); !e.empty()) return refuse(e);
  if (!cid.empty()) {
    if (auto e = CheckCid(cid); !e.empty()) return refuse("cid: " + e);
    label.cid = cid;
  }
  std::string exp;
  if (auto e = text("exp", exp, false); !e.empty()) return refuse(e);
  if (!exp.empty()) {
    if (auto e = CheckDatetime(exp); !e.empty()) return refuse("exp: " + e);
    label.exp = exp;
  }
  if (const auto* neg = object->if_contains("neg"); neg && !neg->is_null()) {
    if (!neg->is_bool()) return refuse("`neg` must be true or false");
    label.neg = neg->get_bool();
  }
  return label;
}

boost::json::object LabelToJson(const Label& label) {
  // Insertion order is the serialized order; it follows Ozone's output so responses read alike.
  boost::json::object out;
  out["ver"] = 1;
  out["src"] = label.src;
  out["uri"] = label.uri;
  if (label.cid) out["cid"] = *label.cid;
  out["val"] = label.val;
  // A false `neg` is omitted, exactly as in the signed CBOR, so JSON and CBOR carry the same fields.
  if (label.neg) out["neg"] = true;
  out["cts"] = label.cts;
  if (label.exp) out["exp"] = *label.exp;
  if (!label.sig.empty()) {
    std::string b64(4 * ((label.sig.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                  reinterpret_cast<const unsigned char*>(label.sig.data()),
                                  static_cast<int>(label.sig.size()));
    b64.resize(static_cast<std::size_t>(n));
    // The reference server writes unpadded base64; decoders accept both.
    while (!b64.empty() && b64.back() == '=') b64.pop_back();
    out["sig"] = boost::json::object{{"$bytes", b64}};
  }
  return out;
}

}  // namespace plyr::labeler
