// A streaming parser for multipart/form-data request bodies (RFC 7578, RFC 2046 section 5.1).
//
// An upload can be 1.5 GiB, so the body is never held whole: the reader is fed the bytes as they
// arrive and passes each part's body on as it goes. What it keeps is bounded by the limits: one
// part's header section (max_header_bytes) and at most boundary length + 3 body bytes held back
// because they might be the start of a delimiter. Body bytes are passed on as views into the
// caller's buffer, not copied, apart from that held-back tail.
//
// Not thread-safe: one reader per body, used from one strand. The reader borrows its Handler,
// which must outlive it. Every failure is InvalidArgument (the client sent a bad body) except a
// handler's own failure, which is returned unchanged.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace plyr::transcoder {

// The boundary parameter of a Content-Type value such as
// `multipart/form-data; boundary=----x` or `boundary="quoted"`. InvalidArgument if the media type
// is not multipart/form-data, or the boundary is missing, repeated or invalid (RFC 2046: 1-70
// bchars, not ending in a space).
StatusOr<std::string> MultipartBoundary(std::string_view content_type);

// A part's headers.
struct MultipartPart {
  std::string name;                     // Content-Disposition: form-data; name="..." (required)
  std::optional<std::string> filename;  // filename="..." if present: raw and unsanitised, may hold '/' or ".."
  std::string content_type;             // the part's Content-Type value as sent, empty if absent
  friend bool operator==(const MultipartPart&, const MultipartPart&) = default;
};

// What one body may cost. Past either limit the body is refused (InvalidArgument).
struct MultipartLimits {
  std::size_t max_header_bytes = 16 * 1024;  // one part's header section, including its blank line
  std::size_t max_parts = 64;
};

class MultipartReader {
 public:
  // Receives the parts in order: OnPartBegin, OnPartData any number of times (pieces of any size,
  // never empty; the view is valid only during the call), OnPartEnd. A non-OK return stops the
  // parse, and Feed returns that status. A part is complete at OnPartEnd, but the form is valid
  // only once Finish() returns OK; after a failure, discard what the handler received. A part cut
  // off by a failure gets no OnPartEnd.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual Status OnPartBegin(const MultipartPart& part) = 0;
    virtual Status OnPartData(std::string_view bytes) = 0;
    virtual Status OnPartEnd() = 0;
  };

  // REQUIRES: `boundary` is valid, as MultipartBoundary returns it (asserted).
  MultipartReader(std::string boundary, Handler& handler, MultipartLimits limits = {});
  MultipartReader(const MultipartReader&) = delete;
  MultipartReader& operator=(const MultipartReader&) = delete;

  // Feeds the next bytes of the body, split anywhere (down to 1 byte at a time). Returns non-OK
  // for a malformed body, a limit passed or a handler failure; the reader then stays failed and
  // every later call returns the same status. Bytes after the closing delimiter (the epilogue)
  // are ignored, as is the preamble before the first delimiter.
  //
  // Malformed means, among others: a header section over max_header_bytes; more than max_parts
  // parts; a part without `Content-Disposition: form-data` and a name; a repeated
  // Content-Disposition or Content-Type; folded or control characters in header lines; a full
  // delimiter followed by anything but "--" or optional spaces/tabs and CRLF (RFC 2046 forbids the
  // delimiter inside a part, so this is an error, not data).
  Status Feed(std::string_view bytes);

  // Call at the end of the body: InvalidArgument unless the closing delimiter was seen.
  Status Finish();

  // True once the closing delimiter has been seen.
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State {
    kPreamble,        // looking for the first delimiter; bytes are dropped
    kBody,            // looking for the next delimiter; bytes go to the handler
    kAfterDelimiter,  // a delimiter matched: "--" closes the body, anything else starts a line end
    kCloseDash,       // one '-' seen after the delimiter
    kPadding,         // transport padding (spaces, tabs) before the CRLF
    kLineFeed,        // CR seen, LF expected
    kHeaders,         // gathering a part's header section
    kDone,            // closing delimiter seen; the rest is epilogue
  };

  Status Step(std::string_view& bytes);
  Status ScanBody(std::string_view& bytes);
  Status ScanHeaders(std::string_view& bytes);
  Status StartPart();
  Status EndPart();
  Status Deliver(std::string_view bytes);

  const std::string delimiter_;  // CRLF "--" boundary
  Handler& handler_;
  const MultipartLimits limits_;
  State state_ = State::kPreamble;
  // The end of the bytes seen so far when it is a proper prefix of the delimiter. Starts as CRLF,
  // so a body that opens with "--boundary" (no CRLF before the first delimiter) matches too.
  std::string held_;
  std::string headers_;  // the current part's header section so far, after a leading CRLF
  std::size_t parts_ = 0;
  bool part_open_ = false;  // OnPartBegin was called and OnPartEnd not yet
  Status failure_;          // OK until the first failure, then that failure for good
};

}  // namespace plyr::transcoder
