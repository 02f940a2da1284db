#include "transcoder/multipart_reader.h"

#include <algorithm>
#include <cassert>
#include <utility>
#include <vector>

namespace plyr::transcoder {
namespace {

Status Invalid(std::string message) { return Status(StatusCode::kInvalidArgument, std::move(message)); }

Status BodyError(std::string_view what) { return Invalid("multipart body: " + std::string(what)); }

Status PartError(std::size_t part, std::string_view what) {
  return Invalid("multipart body: part " + std::to_string(part) + ": " + std::string(what));
}

bool IsSpaceOrTab(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && IsSpaceOrTab(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpaceOrTab(s.back())) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsAlnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// RFC 9110 tchar: what a header or parameter name may be made of.
bool IsTchar(char c) { return IsAlnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos; }

// RFC 2046 bchars. None of them is CR, which MultipartReader::ScanBody relies on.
bool IsValidBoundary(std::string_view boundary) {
  if (boundary.empty() || boundary.size() > 70 || boundary.back() == ' ') return false;
  return std::all_of(boundary.begin(), boundary.end(), [](char c) {
    return IsAlnum(c) || std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
  });
}

struct Parameter {
  std::string name;  // lower-cased
  std::string value;
};

// A header value of the form `type *( ";" name "=" value )`, as both Content-Type and
// Content-Disposition are.
struct HeaderValue {
  std::string type;  // lower-cased
  std::vector<Parameter> parameters;

  const std::string* Find(std::string_view name) const {
    for (const Parameter& p : parameters) {
      if (p.name == name) return &p.value;
    }
    return nullptr;
  }
};

// Values are quoted strings (backslash escapes any byte) or bare runs of bytes up to the next
// ';', space or tab. Bare values are not held to the token grammar because clients send
// boundaries such as `a=b/c` unquoted; the boundary is checked against its own grammar after.
// A repeated parameter is an error: two names or two filenames must not be left to a guess.
StatusOr<HeaderValue> ParseHeaderValue(std::string_view text) {
  HeaderValue out;
  std::size_t i = 0;
  auto at_end = [&] { return i == text.size(); };
  auto skip_spaces = [&] {
    while (!at_end() && IsSpaceOrTab(text[i])) ++i;
  };
  auto bare_run = [&] {
    const std::size_t start = i;
    while (!at_end() && text[i] != ';' && text[i] != '"' && text[i] != '\\' && !IsSpaceOrTab(text[i])) ++i;
    return text.substr(start, i - start);
  };

  skip_spaces();
  out.type = Lower(bare_run());
  while (true) {
    skip_spaces();
    if (at_end()) return out;
    if (text[i] != ';') return Invalid("expected ';' before a parameter");
    ++i;
    skip_spaces();
    if (at_end() || text[i] == ';') continue;  // an empty parameter, as in a trailing ';'

    const std::size_t name_start = i;
    while (!at_end() && IsTchar(text[i])) ++i;
    Parameter parameter{Lower(text.substr(name_start, i - name_start)), {}};
    skip_spaces();
    if (parameter.name.empty() || at_end() || text[i] != '=') return Invalid("malformed parameter");
    ++i;
    skip_spaces();
    if (!at_end() && text[i] == '"') {
      ++i;
      while (true) {
        if (at_end()) return Invalid("unterminated quoted string");
        char c = text[i++];
        if (c == '"') break;
        if (c == '\\') {
          if (at_end()) return Invalid("unterminated quoted string");
          c = text[i++];
        }
        parameter.value += c;
      }
    } else {
      parameter.value = bare_run();
      if (parameter.value.empty()) return Invalid("parameter " + parameter.name + " has no value");
    }
    if (out.Find(parameter.name) != nullptr) return Invalid("repeated parameter " + parameter.name);
    out.parameters.push_back(std::move(parameter));
  }
}

// `lines` is a part's header lines, each ending in CRLF, without the blank line.
StatusOr<MultipartPart> ParsePartHeaders(std::string_view lines, std::size_t part_number) {
  MultipartPart part;
  bool have_disposition = false;
  bool have_type = false;
  while (!lines.empty()) {
    const std::size_t eol = lines.find("\r\n");
    const std::string_view line = lines.substr(0, eol);
    lines.remove_prefix(eol + 2);

    // A CR or LF alone, NUL and the like have no business in a header, and letting them through
    // would put them into names and filenames.
    for (char c : line) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        return PartError(part_number, "control character in a header line");
      }
    }
    if (!line.empty() && IsSpaceOrTab(line.front())) {
      return PartError(part_number, "folded header lines are not supported");
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return PartError(part_number, "header line without ':'");
    const std::string_view name = line.substr(0, colon);
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTchar)) {
      return PartError(part_number, "invalid header name");
    }
    const std::string_view value = TrimSpaces(line.substr(colon + 1));

    const std::string lower_name = Lower(name);
    if (lower_name == "content-disposition") {
      if (std::exchange(have_disposition, true)) return PartError(part_number, "repeated Content-Disposition");
      StatusOr<HeaderValue> disposition = ParseHeaderValue(value);
      if (!disposition.ok()) {
        return PartError(part_number, "Content-Disposition: " + disposition.status().message());
      }
      if (disposition->type != "form-data") return PartError(part_number, "Content-Disposition is not form-data");
      const std::string* field_name = disposition->Find("name");
      if (field_name == nullptr) return PartError(part_number, "Content-Disposition has no name");
      part.name = *field_name;
      if (const std::string* filename = disposition->Find("filename")) part.filename = *filename;
    } else if (lower_name == "content-type") {
      if (std::exchange(have_type, true)) return PartError(part_number, "repeated Content-Type");
      part.content_type = std::string(value);
    }
  }
  if (!have_disposition) return PartError(part_number, "no Content-Disposition header");
  return part;
}

}  // namespace

StatusOr<std::string> MultipartBoundary(std::string_view content_type) {
  StatusOr<HeaderValue> value = ParseHeaderValue(content_type);
  if (!value.ok()) return Invalid("Content-Type: " + value.status().message());
  if (value->type != "multipart/form-data") return Invalid("Content-Type is not multipart/form-data");
  const std::string* boundary = value->Find("boundary");
  if (boundary == nullptr) return Invalid("Content-Type has no boundary parameter");
  if (!IsValidBoundary(*boundary)) return Invalid("Content-Type boundary is not 1-70 RFC 2046 characters");
  return *boundary;
}

MultipartReader::MultipartReader(std::string boundary, Handler& handler, MultipartLimits limits)
    : delimiter_("\r\n--" + boundary), handler_(handler), limits_(limits), held_("\r\n") {
  assert(IsValidBoundary(boundary));
}

Status MultipartReader::Feed(std::string_view bytes) {
  while (failure_.ok() && !bytes.empty() && state_ != State::kDone) failure_ = Step(bytes);
  return failure_;
}

Status MultipartReader::Finish() {
  if (failure_.ok() && state_ != State::kDone) failure_ = BodyError("ended before the closing boundary");
  return failure_;
}

// Consumes a prefix of `bytes` (or, in body states, only moves held bytes on) and moves state_.
Status MultipartReader::Step(std::string_view& bytes) {
  const char c = bytes.front();
  switch (state_) {
    case State::kPreamble:
    case State::kBody:
      return ScanBody(bytes);
    case State::kHeaders:
      return ScanHeaders(bytes);
    case State::kAfterDelimiter:
      if (c == '-') {
        bytes.remove_prefix(1);
        state_ = State::kCloseDash;
      } else {
        state_ = State::kPadding;
      }
      return OkStatus();
    case State::kCloseDash:
      if (c != '-') return BodyError("a boundary is followed by a single '-'");
      bytes.remove_prefix(1);
      state_ = State::kDone;
      return EndPart();
    case State::kPadding:
      // RFC 2046 forbids the delimiter inside a part, so a boundary followed by other bytes is a
      // malformed body rather than data.
      if (c != '\r' && !IsSpaceOrTab(c)) return BodyError("a boundary is followed by bytes other than CRLF");
      bytes.remove_prefix(1);
      if (c == '\r') state_ = State::kLineFeed;
      return OkStatus();
    case State::kLineFeed:
      if (c != '\n') return BodyError("a boundary line ends in CR without LF");
      bytes.remove_prefix(1);
      return StartPart();
    case State::kDone:
      break;
  }
  bytes = {};
  return OkStatus();
}

// Passes bytes up to the next delimiter on (or drops them in the preamble) and holds back an end
// that may be the start of one. The delimiter's only CR is its first byte, which keeps this
// simple: a held start either completes or is all data, and the tail to hold begins at the last
// CR within delimiter-length - 1 bytes of the end, if anywhere.
Status MultipartReader::ScanBody(std::string_view& bytes) {
  const std::string_view delimiter = delimiter_;
  if (!held_.empty()) {
    const std::string_view rest = delimiter.substr(held_.size());
    const std::string_view next = bytes.substr(0, rest.size());
    if (!rest.starts_with(next)) {
      Status status = Deliver(held_);
      held_.clear();
      return status;
    }
    bytes.remove_prefix(next.size());
    if (next.size() < rest.size()) {
      held_.append(next);
    } else {
      held_.clear();
      state_ = State::kAfterDelimiter;
    }
    return OkStatus();
  }

  const std::size_t found = bytes.find(delimiter);
  if (found != std::string_view::npos) {
    Status status = Deliver(bytes.substr(0, found));
    bytes.remove_prefix(found + delimiter.size());
    state_ = State::kAfterDelimiter;
    return status;
  }
  const std::string_view tail = bytes.substr(bytes.size() - std::min(bytes.size(), delimiter.size() - 1));
  const std::size_t cr = tail.rfind('\r');
  const bool may_start = cr != std::string_view::npos && delimiter.starts_with(tail.substr(cr));
  const std::size_t keep = may_start ? tail.size() - cr : 0;
  Status status = Deliver(bytes.substr(0, bytes.size() - keep));
  held_.assign(bytes.substr(bytes.size() - keep));
  bytes = {};
  return status;
}

// headers_ starts with the CRLF that ended the boundary line, so one search for CRLFCRLF finds
// both the blank line after headers and an empty header section.
Status MultipartReader::ScanHeaders(std::string_view& bytes) {
  const std::size_t capacity = 2 + limits_.max_header_bytes;
  const std::size_t old_size = headers_.size();
  const std::size_t take = std::min(bytes.size(), capacity - old_size);
  headers_.append(bytes.substr(0, take));
  const std::size_t blank = headers_.find("\r\n\r\n", old_size < 3 ? 0 : old_size - 3);
  if (blank == std::string::npos) {
    if (take < bytes.size()) {
      return PartError(parts_ + 1,
                       "header section is over " + std::to_string(limits_.max_header_bytes) + " bytes");
    }
    bytes = {};
    return OkStatus();
  }
  bytes.remove_prefix(blank + 4 - old_size);  // what follows the blank line is the part's body
  StatusOr<MultipartPart> part = ParsePartHeaders(std::string_view(headers_).substr(2, blank), parts_ + 1);
  headers_.clear();
  if (!part.ok()) return part.status();
  ++parts_;
  part_open_ = true;
  state_ = State::kBody;
  return handler_.OnPartBegin(*part);
}

Status MultipartReader::StartPart() {
  if (Status status = EndPart(); !status.ok()) return status;
  if (parts_ == limits_.max_parts) return BodyError("more than " + std::to_string(limits_.max_parts) + " parts");
  headers_.assign("\r\n");
  state_ = State::kHeaders;
  return OkStatus();
}

Status MultipartReader::EndPart() {
  if (!std::exchange(part_open_, false)) return OkStatus();
  return handler_.OnPartEnd();
}

Status MultipartReader::Deliver(std::string_view bytes) {
  if (state_ != State::kBody || bytes.empty()) return OkStatus();
  return handler_.OnPartData(bytes);
}

}  // namespace plyr::transcoder
