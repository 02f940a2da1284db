#include "transcoder/multipart_reader.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace plyr::transcoder {
namespace {

struct RecordedPart {
  MultipartPart headers;
  std::string data;
  bool ended = false;
  friend bool operator==(const RecordedPart&, const RecordedPart&) = default;
};

// Records what the reader reports, checks the call order the Handler contract promises, and can
// be told to fail.
class Recorder : public MultipartReader::Handler {
 public:
  Status OnPartBegin(const MultipartPart& part) override {
    EXPECT_TRUE(parts.empty() || parts.back().ended) << "OnPartBegin inside a part";
    ++calls;
    parts.push_back({part, {}, false});
    if (fail_begin_of == part.name) return Status(StatusCode::kResourceExhausted, "refused " + part.name);
    return OkStatus();
  }
  Status OnPartData(std::string_view bytes) override {
    EXPECT_FALSE(bytes.empty()) << "OnPartData with no bytes";
    EXPECT_TRUE(!parts.empty() && !parts.back().ended) << "OnPartData outside a part";
    ++calls;
    if (!parts.empty()) parts.back().data.append(bytes);
    delivered += bytes.size();
    std::less_equal<const char*> le;
    if (!(le(fed.data(), bytes.data()) && le(bytes.data() + bytes.size(), fed.data() + fed.size()))) {
      not_from_fed += bytes.size();
    }
    if (fail_after_bytes && delivered >= *fail_after_bytes) return Status(StatusCode::kDataLoss, "disk full");
    return OkStatus();
  }
  Status OnPartEnd() override {
    EXPECT_TRUE(!parts.empty() && !parts.back().ended) << "OnPartEnd outside a part";
    ++calls;
    if (!parts.empty()) parts.back().ended = true;
    if (fail_end) return Status(StatusCode::kInternal, "end refused");
    return OkStatus();
  }

  std::vector<RecordedPart> parts;
  std::size_t calls = 0;
  std::size_t delivered = 0;
  std::string_view fed;           // set by the test to the piece being fed
  std::size_t not_from_fed = 0;   // data bytes handed over from somewhere other than `fed`
  std::string fail_begin_of;
  std::optional<std::size_t> fail_after_bytes;
  bool fail_end = false;
};

struct Outcome {
  Status status;  // the first failing Feed, or else Finish
  bool done = false;
  std::vector<RecordedPart> parts;
};

Outcome ParsePieces(const std::string& boundary, const std::vector<std::string_view>& pieces,
                    MultipartLimits limits = {}) {
  Recorder recorder;
  MultipartReader reader(boundary, recorder, limits);
  Outcome outcome;
  for (std::string_view piece : pieces) {
    recorder.fed = piece;
    outcome.status = reader.Feed(piece);
    if (!outcome.status.ok()) break;
  }
  if (outcome.status.ok()) outcome.status = reader.Finish();
  outcome.done = reader.done();
  outcome.parts = std::move(recorder.parts);
  return outcome;
}

Outcome ParseWhole(const std::string& boundary, std::string_view body, MultipartLimits limits = {}) {
  return ParsePieces(boundary, {body}, limits);
}

Outcome ParseChunked(const std::string& boundary, std::string_view body, std::size_t chunk,
                     MultipartLimits limits = {}) {
  std::vector<std::string_view> pieces;
  for (std::size_t at = 0; at < body.size(); at += chunk) pieces.push_back(body.substr(at, chunk));
  return ParsePieces(boundary, pieces, limits);
}

// One line per part, readable in a failure message.
std::string Describe(const std::vector<RecordedPart>& parts) {
  std::string out;
  for (const RecordedPart& p : parts) {
    out += "name=" + p.headers.name + " filename=" + (p.headers.filename ? "<" + *p.headers.filename + ">" : "none") +
           " type=" + p.headers.content_type + " data=<" + p.data + ">" + (p.ended ? "" : " (not ended)") + "\n";
  }
  return out;
}

std::string Field(const std::string& name) { return "Content-Disposition: form-data; name=\"" + name + "\"\r\n"; }

// A body with the given parts, each a header block (lines ending in CRLF) and data.
std::string FormBody(const std::string& boundary, const std::vector<std::pair<std::string, std::string>>& parts) {
  std::string body;
  for (const auto& [headers, data] : parts) body += "--" + boundary + "\r\n" + headers + "\r\n" + data + "\r\n";
  return body + "--" + boundary + "--\r\n";
}

// Random bytes laced with things that look like the start of a delimiter but are data: "\r\n--"
// plus every proper prefix of the boundary followed by a byte that breaks it, the boundary
// without its CRLF, lone CRs, and an almost-delimiter at the very end.
std::string TrickyData(const std::string& boundary, std::size_t random_bytes, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<std::string> traps = {"\r", "\r\n", "\r\n-", "\r\n--", "\r\r\n--", "\r\n\r\n--",
                                    "--" + boundary + "\r\n", "\n--" + boundary + "\r\n", "\r\n-" + boundary};
  for (std::size_t k = 0; k < boundary.size(); ++k) {
    const char breaker = boundary[k] == 'X' ? 'Y' : 'X';
    traps.push_back("\r\n--" + boundary.substr(0, k) + breaker);
    traps.push_back("\r\n--" + boundary.substr(0, k) + "\r\n--" + boundary.substr(0, k) + '\r');
  }
  // Each trap comes after a plain byte, so that a random CR before "\n--boundary" cannot make
  // a real delimiter.
  std::string data = "\r\n--" + boundary.substr(0, 2) + "!";  // a trap right at the start
  std::size_t next_trap = 0;
  while (data.size() < random_bytes) {
    data += static_cast<char>(byte(rng));
    if (byte(rng) < 8) data += "g" + traps[next_trap++ % traps.size()];
  }
  for (; next_trap % traps.size() != 0; ++next_trap) data += "g" + traps[next_trap % traps.size()];  // all of them
  data += "\r\n--" + boundary.substr(0, boundary.size() - 1);  // the real delimiter follows at once
  EXPECT_EQ(data.find("\r\n--" + boundary), std::string::npos) << "the test data holds a real delimiter";
  return data;
}

const std::string kBoundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

// The boundary, or the failure as text, so a wrong answer fails the test instead of asserting.
std::string BoundaryOf(const std::string& content_type) {
  StatusOr<std::string> boundary = MultipartBoundary(content_type);
  return boundary.ok() ? *boundary : "<" + boundary.status().ToString() + ">";
}

TEST(MultipartBoundary, ReadsPlainAndQuotedBoundaries) {
  EXPECT_EQ(BoundaryOf("multipart/form-data; boundary=" + kBoundary), kBoundary);
  EXPECT_EQ(BoundaryOf("multipart/form-data; boundary=\"simple boundary\""), "simple boundary");
  EXPECT_EQ(BoundaryOf("Multipart/Form-Data ; charset=utf-8;BOUNDARY = \"a\\(b)+_,-./:=?\""), "a(b)+_,-./:=?");
  EXPECT_EQ(BoundaryOf("multipart/form-data;boundary=x;"), "x");
  EXPECT_EQ(BoundaryOf("multipart/form-data; boundary=" + std::string(70, 'b')), std::string(70, 'b'));
}

TEST(MultipartBoundary, RefusesOtherTypesAndBadBoundaries) {
  for (const std::string content_type : {
           "", "application/octet-stream", "text/plain; boundary=abc", "multipart/mixed; boundary=abc",
           "multipart/form-data-x; boundary=abc", "multipart/form-data",  // no boundary
           "multipart/form-data; charset=utf-8", "multipart/form-data; boundary=", "multipart/form-data; boundary=\"\"",
           "multipart/form-data; boundary=\"ends in space \"", "multipart/form-data; boundary=a@b",
           "multipart/form-data; boundary=\"a\\\"b\"", "multipart/form-data; boundary=\"unterminated",
           "multipart/form-data; boundary=a; boundary=b", "multipart/form-data; boundary=a b",
           "multipart/form-data; boundary=\"a\rb\""}) {
    StatusOr<std::string> boundary = MultipartBoundary(content_type);
    ASSERT_FALSE(boundary.ok()) << content_type;
    EXPECT_EQ(boundary.status().code(), StatusCode::kInvalidArgument) << content_type;
  }
  EXPECT_FALSE(MultipartBoundary("multipart/form-data; boundary=" + std::string(71, 'b')).ok());
  EXPECT_EQ(MultipartBoundary("multipart/form-data").status().message(), "Content-Type has no boundary parameter");
  EXPECT_EQ(MultipartBoundary("application/json").status().message(), "Content-Type is not multipart/form-data");
}

TEST(MultipartReader, ParsesASimpleTwoFieldForm) {
  const std::string body = FormBody(kBoundary, {{Field("title"), "Night Drive"}, {Field("artist"), "The Plyrs"}});
  const Outcome outcome = ParseWhole(kBoundary, body);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_TRUE(outcome.done);
  EXPECT_EQ(Describe(outcome.parts),
            "name=title filename=none type= data=<Night Drive>\n"
            "name=artist filename=none type= data=<The Plyrs>\n");
}

TEST(MultipartReader, FileDataThatLooksLikeADelimiterIsData) {
  const std::string data = TrickyData(kBoundary, 64 * 1024, 1);
  const std::string body = FormBody(
      kBoundary, {{Field("title"), "x"},
                  {"Content-Disposition: form-data; name=\"file\"; filename=\"take.wav\"\r\n"
                   "Content-Type: audio/wav\r\n",
                   data}});
  const Outcome outcome = ParseWhole(kBoundary, body);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  ASSERT_EQ(outcome.parts.size(), 2u);
  EXPECT_EQ(outcome.parts[1].headers, (MultipartPart{"file", "take.wav", "audio/wav"}));
  EXPECT_TRUE(outcome.parts[1].data == data) << "file data differs";
  EXPECT_TRUE(outcome.parts[1].ended);
}

TEST(MultipartReader, EverySplitGivesTheSameParts) {
  const std::string boundary = "xYz";  // short, so the data below holds many near-delimiters
  const std::string data = TrickyData(boundary, 600, 2);
  const std::string body = "pre\r\n--" + boundary.substr(0, 2) + "\r\n" +
                           FormBody(boundary, {{Field("title"), "t\r\n-"},
                                               {Field("file") + "Content-Type: application/octet-stream\r\n", data},
                                               {Field("empty"), ""}}) +
                           "epilogue";
  const Outcome whole = ParseWhole(boundary, body);
  ASSERT_TRUE(whole.status.ok()) << whole.status.ToString();
  ASSERT_EQ(whole.parts.size(), 3u);
  ASSERT_TRUE(whole.parts[1].data == data);

  for (std::size_t split = 1; split < body.size(); ++split) {
    const std::string_view view(body);
    const Outcome outcome = ParsePieces(boundary, {view.substr(0, split), view.substr(split)});
    ASSERT_TRUE(outcome.status.ok()) << "split at " << split << ": " << outcome.status.ToString();
    ASSERT_TRUE(outcome.parts == whole.parts) << "split at " << split;
  }
  for (std::size_t chunk = 1; chunk <= body.size(); ++chunk) {
    const Outcome outcome = ParseChunked(boundary, body, chunk);
    ASSERT_TRUE(outcome.status.ok()) << "chunks of " << chunk << ": " << outcome.status.ToString();
    ASSERT_TRUE(outcome.parts == whole.parts) << "chunks of " << chunk;
  }
}

TEST(MultipartReader, AcceptsOneByteAtATime) {
  const std::string data = TrickyData(kBoundary, 4096, 3);
  const std::string body = FormBody(kBoundary, {{Field("title"), "Night Drive"}, {Field("file"), data}});
  Recorder recorder;
  MultipartReader reader(kBoundary, recorder);
  const std::size_t epilogue = body.size() - 2;  // the CRLF after "--boundary--"
  for (std::size_t i = 0; i < body.size(); ++i) {
    EXPECT_EQ(reader.done(), i >= epilogue) << "at byte " << i;
    ASSERT_TRUE(reader.Feed(body.substr(i, 1)).ok()) << "at byte " << i;
  }
  EXPECT_TRUE(reader.done());
  EXPECT_TRUE(reader.Finish().ok());
  ASSERT_EQ(recorder.parts.size(), 2u);
  EXPECT_EQ(recorder.parts[0].data, "Night Drive");
  EXPECT_TRUE(recorder.parts[1].data == data);
  EXPECT_TRUE(recorder.parts[1].ended);
}

TEST(MultipartReader, ParsesWithAQuotedBoundaryFromTheContentType) {
  StatusOr<std::string> boundary = MultipartBoundary("multipart/form-data; boundary=\"simple: boundary?\"");
  ASSERT_TRUE(boundary.ok()) << boundary.status().ToString();
  const std::string body = FormBody(*boundary, {{Field("a"), "one"}, {Field("b"), "--simple: boundary"}});
  const Outcome outcome = ParseChunked(*boundary, body, 5);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(Describe(outcome.parts),
            "name=a filename=none type= data=<one>\n"
            "name=b filename=none type= data=<--simple: boundary>\n");
}

TEST(MultipartReader, ABodyWithoutTheClosingDelimiterFails) {
  const std::string body = FormBody(kBoundary, {{Field("title"), "x"}, {Field("file"), "abc"}});
  // Cut everywhere from inside the last part's data to just before the final "-".
  const std::size_t closing = body.rfind("\r\n--" + kBoundary + "--");
  for (std::size_t end = closing - 2; end < body.size() - 2; ++end) {
    const Outcome outcome = ParseWhole(kBoundary, std::string_view(body).substr(0, end));
    EXPECT_EQ(outcome.status.code(), StatusCode::kInvalidArgument) << "cut at " << end;
    EXPECT_EQ(outcome.status.message(), "multipart body: ended before the closing boundary");
    EXPECT_FALSE(outcome.done);
  }
  // A body ending after a part's delimiter line, or in the middle of the last part, never ends
  // the last part: the handler must not take it for complete.
  const Outcome cut = ParseWhole(kBoundary, std::string_view(body).substr(0, closing + 1));
  ASSERT_EQ(cut.parts.size(), 2u);
  EXPECT_TRUE(cut.parts[0].ended);
  EXPECT_FALSE(cut.parts[1].ended);
  EXPECT_FALSE(ParseWhole(kBoundary, "").status.ok());
  EXPECT_FALSE(ParseWhole(kBoundary, "just a preamble\r\n").status.ok());
}

TEST(MultipartReader, RefusesAHeaderSectionOverTheLimit) {
  const MultipartLimits limits{.max_header_bytes = 100, .max_parts = 64};
  auto body_with_section_of = [&](std::size_t section_bytes) {
    const std::string first = Field("file");
    const std::string pad_line_overhead = "X-Pad: \r\n";
    const std::string headers = first + "X-Pad: " +
                                std::string(section_bytes - first.size() - pad_line_overhead.size() - 2, 'p') + "\r\n";
    EXPECT_EQ(headers.size() + 2, section_bytes);
    return FormBody(kBoundary, {{headers, "data"}});
  };
  const Outcome at_limit = ParseChunked(kBoundary, body_with_section_of(100), 7, limits);
  EXPECT_TRUE(at_limit.status.ok()) << at_limit.status.ToString();
  ASSERT_EQ(at_limit.parts.size(), 1u);
  EXPECT_EQ(at_limit.parts[0].data, "data");

  for (std::size_t chunk : {1u, 7u, 1000u}) {
    const Outcome over = ParseChunked(kBoundary, body_with_section_of(101), chunk, limits);
    EXPECT_EQ(over.status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(over.status.message(), "multipart body: part 1: header section is over 100 bytes");
    EXPECT_TRUE(over.parts.empty());
  }

  // With the default limit, an endless header line is refused as soon as it passes 16 KiB.
  Recorder recorder;
  MultipartReader reader(kBoundary, recorder);
  ASSERT_TRUE(reader.Feed("--" + kBoundary + "\r\n" + Field("f") + "X-Long: ").ok());
  const std::string chunk(1024, 'a');
  std::size_t fed = 0;
  Status status;
  while (status.ok() && fed < 1024 * 1024) {
    status = reader.Feed(chunk);
    fed += chunk.size();
  }
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_LE(fed, 17u * 1024);
}

TEST(MultipartReader, RefusesMorePartsThanTheLimit) {
  const MultipartLimits limits{.max_header_bytes = 1024, .max_parts = 3};
  std::vector<std::pair<std::string, std::string>> parts;
  for (int i = 0; i < 3; ++i) parts.push_back({Field("f" + std::to_string(i)), "v"});
  const Outcome three = ParseWhole(kBoundary, FormBody(kBoundary, parts), limits);
  EXPECT_TRUE(three.status.ok()) << three.status.ToString();
  EXPECT_EQ(three.parts.size(), 3u);

  parts.push_back({Field("f3"), "v"});
  const Outcome four = ParseWhole(kBoundary, FormBody(kBoundary, parts), limits);
  EXPECT_EQ(four.status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(four.status.message(), "multipart body: more than 3 parts");
  EXPECT_EQ(four.parts.size(), 3u);

  // The default is 64.
  parts.clear();
  for (int i = 0; i < 65; ++i) parts.push_back({Field("f" + std::to_string(i)), ""});
  EXPECT_EQ(ParseWhole(kBoundary, FormBody(kBoundary, parts)).status.message(), "multipart body: more than 64 parts");
  parts.pop_back();
  EXPECT_TRUE(ParseWhole(kBoundary, FormBody(kBoundary, parts)).status.ok());
}

TEST(MultipartReader, AHandlerErrorStopsTheParseForGood) {
  const std::string body =
      FormBody(kBoundary, {{Field("title"), "x"}, {Field("file"), std::string(1000, 'd')}, {Field("after"), "y"}});

  {  // refused at OnPartBegin: the status comes back unchanged and nothing more is reported
    Recorder recorder;
    recorder.fail_begin_of = "file";
    MultipartReader reader(kBoundary, recorder);
    const Status status = reader.Feed(body);
    EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
    EXPECT_EQ(status.message(), "refused file");
    const std::size_t calls = recorder.calls;
    EXPECT_EQ(reader.Feed(body).message(), "refused file");
    EXPECT_EQ(reader.Finish().message(), "refused file");
    EXPECT_EQ(recorder.calls, calls);
    ASSERT_EQ(recorder.parts.size(), 2u);
    EXPECT_TRUE(recorder.parts[1].data.empty());
    EXPECT_FALSE(reader.done());
  }
  {  // refused at OnPartData, fed in pieces: later pieces are not looked at
    Recorder recorder;
    recorder.fail_after_bytes = 300;
    MultipartReader reader(kBoundary, recorder);
    Status status;
    for (std::size_t at = 0; at < body.size() && status.ok(); at += 100) status = reader.Feed(body.substr(at, 100));
    EXPECT_EQ(status.code(), StatusCode::kDataLoss);
    EXPECT_EQ(reader.Feed("more").code(), StatusCode::kDataLoss);
    EXPECT_EQ(recorder.parts.size(), 2u);
    EXPECT_FALSE(recorder.parts[1].ended);
    EXPECT_LT(recorder.delivered, 400u);
  }
  {  // refused at OnPartEnd
    Recorder recorder;
    recorder.fail_end = true;
    MultipartReader reader(kBoundary, recorder);
    EXPECT_EQ(reader.Feed(body).code(), StatusCode::kInternal);
    EXPECT_EQ(recorder.parts.size(), 1u);
  }
}

TEST(MultipartReader, IgnoresPreambleAndEpilogue) {
  const std::string preamble = "This is the preamble.\r\n--\r\n--" + kBoundary.substr(0, 10) + "\r\n\r\n--" +
                               kBoundary.substr(0, 20) + "zz\r\n";
  const std::string epilogue = "epilogue\r\n--" + kBoundary + "\r\n" + Field("ghost") + "\r\nboo\r\n--" + kBoundary +
                               "--\r\nand \x01 anything";
  const std::string form = FormBody(kBoundary, {{Field("title"), "x"}});

  for (const std::string& body : {preamble + "\r\n" + form + epilogue,  // a preamble, then CRLF before the delimiter
                                  "\r\n" + form,                          // an empty preamble
                                  form + epilogue}) {                      // no preamble at all
    for (std::size_t chunk : {1u, 3u, 4096u}) {
      const Outcome outcome = ParseChunked(kBoundary, body, chunk);
      ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
      EXPECT_TRUE(outcome.done);
      EXPECT_EQ(Describe(outcome.parts), "name=title filename=none type= data=<x>\n");
    }
  }
  // The first delimiter must start a line: "--boundary" inside a preamble line is not one.
  const Outcome mid_line =
      ParseWhole(kBoundary, "x--" + kBoundary + "\r\n" + Field("a") + "\r\nv\r\n--" + kBoundary + "--");
  EXPECT_TRUE(mid_line.status.ok()) << mid_line.status.ToString();
  EXPECT_TRUE(mid_line.parts.empty());
  // An empty form is valid.
  const Outcome empty = ParseWhole(kBoundary, "--" + kBoundary + "--");
  EXPECT_TRUE(empty.status.ok());
  EXPECT_TRUE(empty.parts.empty());
}

TEST(MultipartReader, ToleratesTransportPaddingAfterABoundary) {
  const std::string body = "--" + kBoundary + " \t \r\n" + Field("a") + "\r\nv\r\n--" + kBoundary + "\t\r\n" +
                           Field("b") + "\r\nw\r\n--" + kBoundary + "--  \r\n";
  const Outcome outcome = ParseChunked(kBoundary, body, 1);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(Describe(outcome.parts), "name=a filename=none type= data=<v>\nname=b filename=none type= data=<w>\n");
}

TEST(MultipartReader, ReadsHeaderParametersQuotedOrNot) {
  const std::string body = FormBody(
      kBoundary,
      {{"Content-Disposition: form-data; name=\"file\"; filename=\"my \\\"best\\\" take \\\\ 2.wav\"\r\n", "1"},
       {"content-disposition:FORM-DATA;NAME=upload ; FILENAME=take.flac\r\nCONTENT-TYPE:  audio/flac \r\n", "2"},
       {"X-Other: ignored\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Disposition: form-data; filename=\"\"; name=\"\xc3\xa9t\xc3\xa9\"; filename*=UTF-8''x.wav\r\n",
        "3"},
       {"Content-Disposition: form-data; name=\"a;b=c\"; filename=\"../../etc/passwd\"\r\n", "4"}});
  const Outcome outcome = ParseChunked(kBoundary, body, 2);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(Describe(outcome.parts),
            "name=file filename=<my \"best\" take \\ 2.wav> type= data=<1>\n"
            "name=upload filename=<take.flac> type=audio/flac data=<2>\n"
            "name=\xc3\xa9t\xc3\xa9 filename=<> type=text/plain; charset=utf-8 data=<3>\n"
            "name=a;b=c filename=<../../etc/passwd> type= data=<4>\n");
}

TEST(MultipartReader, RefusesMalformedBodies) {
  const std::string b = kBoundary;
  auto one_part = [&](const std::string& headers) { return FormBody(b, {{headers, "v"}}); };
  struct Case {
    std::string body;
    std::string message;
  };
  const std::vector<Case> cases = {
      {one_part(""), "multipart body: part 1: no Content-Disposition header"},
      {one_part("Content-Type: text/plain\r\n"), "multipart body: part 1: no Content-Disposition header"},
      {one_part("Content-Disposition: attachment; name=\"a\"\r\n"),
       "multipart body: part 1: Content-Disposition is not form-data"},
      {one_part("Content-Disposition: form-data; filename=\"a\"\r\n"),
       "multipart body: part 1: Content-Disposition has no name"},
      {one_part(Field("a") + Field("b")), "multipart body: part 1: repeated Content-Disposition"},
      {one_part(Field("a") + "Content-Type: a\r\nContent-Type: b\r\n"),
       "multipart body: part 1: repeated Content-Type"},
      {one_part("Content-Disposition: form-data; name=a; name=b\r\n"),
       "multipart body: part 1: Content-Disposition: repeated parameter name"},
      {one_part("Content-Disposition: form-data; name=\"a\r\n"),
       "multipart body: part 1: Content-Disposition: unterminated quoted string"},
      {one_part("Content-Disposition: form-data; name\r\n"),
       "multipart body: part 1: Content-Disposition: malformed parameter"},
      {one_part("Content-Disposition: form-data; name=\"a\"; filename=\"x\ny\"\r\n"),
       "multipart body: part 1: control character in a header line"},
      {one_part(Field("a") + "no colon here\r\n"), "multipart body: part 1: header line without ':'"},
      {one_part(Field("a") + "Bad Name: x\r\n"), "multipart body: part 1: invalid header name"},
      {one_part(Field("a") + "X-Note: one\r\n two\r\n"),
       "multipart body: part 1: folded header lines are not supported"},
      {FormBody(b, {{Field("a"), "v"}, {"", "w"}}), "multipart body: part 2: no Content-Disposition header"},
      // The full delimiter inside data is forbidden (RFC 2046), not data.
      {FormBody(b, {{Field("a"), "v\r\n--" + b + "X"}}),
       "multipart body: a boundary is followed by bytes other than CRLF"},
      {"--" + b + "-\r\n", "multipart body: a boundary is followed by a single '-'"},
      {"--" + b + "\r" + Field("a"), "multipart body: a boundary line ends in CR without LF"},
      {"--" + b + "\n" + Field("a") + "\r\nv\r\n--" + b + "--",
       "multipart body: a boundary is followed by bytes other than CRLF"},
  };
  for (const Case& c : cases) {
    for (std::size_t chunk : {1u, 1u << 20}) {
      const Outcome outcome = ParseChunked(b, c.body, chunk);
      EXPECT_EQ(outcome.status.code(), StatusCode::kInvalidArgument) << c.message;
      EXPECT_EQ(outcome.status.message(), c.message) << "chunks of " << chunk;
      EXPECT_FALSE(outcome.done);
    }
  }
}

TEST(MultipartReader, PassesALargePartOnWithoutHoldingItBack) {
  const std::string data = TrickyData(kBoundary, 8 * 1024 * 1024, 4);
  const std::string head = "--" + kBoundary + "\r\n" + Field("file") + "\r\n";
  const std::string body = FormBody(kBoundary, {{Field("file"), data}});
  ASSERT_EQ(body.substr(0, head.size()), head);
  const std::size_t max_held = kBoundary.size() + 3;

  for (std::size_t chunk : {std::size_t{65536}, std::size_t{4093}}) {
    Recorder recorder;
    MultipartReader reader(kBoundary, recorder);
    std::size_t feeds = 0;
    for (std::size_t at = 0; at < body.size(); at += chunk) {
      const std::string_view piece = std::string_view(body).substr(at, chunk);
      recorder.fed = piece;
      ASSERT_TRUE(reader.Feed(piece).ok()) << "at " << at;
      ++feeds;
      // Everything of the part fed so far has been passed on, but for a short held-back tail.
      const std::size_t end = at + piece.size();
      if (end > head.size() && end <= head.size() + data.size()) {
        ASSERT_GE(recorder.delivered + max_held, end - head.size()) << "at " << end;
      }
    }
    ASSERT_TRUE(reader.Finish().ok());
    ASSERT_EQ(recorder.parts.size(), 1u);
    EXPECT_EQ(recorder.parts[0].data.size(), data.size());
    EXPECT_TRUE(recorder.parts[0].data == data) << "data differs";
    EXPECT_TRUE(recorder.parts[0].ended);
    // Data comes as views into what was fed, except held-back tails (one per Feed at most).
    EXPECT_LE(recorder.not_from_fed, feeds * max_held);
  }
}

}  // namespace
}  // namespace plyr::transcoder
