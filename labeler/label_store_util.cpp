// Helpers both engines of the label log share (label_store.cpp, label_store_pg.cpp).
#include "labeler/label_store_util.h"

#include <algorithm>
#include <chrono>
#include <limits>

namespace plyr::labeler::log_util {

namespace {

std::optional<int> Digits(std::string_view text, std::size_t pos, std::size_t count) {
  if (pos + count > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

constexpr std::array<std::size_t, 10> kInSizes = {1, 2, 4, 8, 16, 32, 64, 128, 256, kMaxInChunk};

std::size_t PaddedSize(std::size_t n) {
  for (std::size_t size : kInSizes) {
    if (n <= size) return size;
  }
  return kMaxInChunk;
}

}  // namespace

SqlBuilder& SqlBuilder::Text(std::string_view text) {
  sql_ += text;
  return *this;
}

SqlBuilder& SqlBuilder::Param(SqlValue value) {
  params_.push_back(std::move(value));
  sql_ += style_ == Style::kSqlite ? '?' : '$';
  sql_ += std::to_string(params_.size());
  return *this;
}

SqlBuilder& SqlBuilder::In(std::string_view column, std::span<const std::string> values) {
  sql_ += column;
  sql_ += " IN (";
  const std::size_t padded = PaddedSize(values.size());
  for (std::size_t i = 0; i < padded; ++i) {
    if (i > 0) sql_ += ", ";
    Param(values[std::min(i, values.size() - 1)]);
  }
  sql_ += ')';
  return *this;
}

SqlBuilder& SqlBuilder::InChunked(std::string_view column, std::span<const std::string> values) {
  sql_ += '(';
  for (std::size_t start = 0; start < values.size(); start += kMaxInChunk) {
    if (start > 0) sql_ += " OR ";
    In(column, values.subspan(start, std::min(kMaxInChunk, values.size() - start)));
  }
  sql_ += ')';
  return *this;
}

StatusOr<UriPatterns> SplitUriPatterns(const std::vector<std::string>& patterns) {
  UriPatterns out;
  for (const std::string& pattern : patterns) {
    const std::size_t star = pattern.find('*');
    if (pattern == "*") {
      out.match_all = true;
    } else if (star == std::string::npos) {
      out.exact.push_back(pattern);
    } else if (star + 1 == pattern.size()) {
      out.prefixes.push_back(pattern.substr(0, star));
    } else {
      return Status(StatusCode::kInvalidArgument, "'*' only at the end of a pattern");  // the caller refuses it first
    }
  }
  out.exact = Distinct(out.exact);
  out.prefixes = Distinct(out.prefixes);
  return out;
}

StatusOr<QueryTerms> SortOutQueryTerms(const std::vector<std::string>& uri_patterns,
                                       const std::vector<std::string>& sources, std::size_t max_params) {
  auto patterns = SplitUriPatterns(uri_patterns);
  if (!patterns.ok()) return patterns.status();
  QueryTerms terms{std::move(*patterns), {}};
  if (terms.patterns.none()) return terms;
  terms.sources = Distinct(sources);
  if (terms.patterns.exact.size() + 2 * terms.patterns.prefixes.size() + terms.sources.size() + 2 > max_params) {
    return Status(StatusCode::kInvalidArgument, "too many patterns and sources in one query");
  }
  return terms;
}

Status InvalidLabel() {
  return Status(StatusCode::kInvalidArgument, "a label without its signature or CBOR, or with an unreadable exp");
}

std::int64_t ClampLimit(std::size_t limit) {
  return static_cast<std::int64_t>(std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
}

// An ATProto datetime ("YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)") as Unix milliseconds.
// The fraction is truncated to milliseconds, which is all an expiry check needs.
std::optional<std::int64_t> DatetimeToUnixMs(std::string_view text) {
  const auto year = Digits(text, 0, 4), month = Digits(text, 5, 2), day = Digits(text, 8, 2);
  const auto hour = Digits(text, 11, 2), minute = Digits(text, 14, 2), second = Digits(text, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':') return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{*year}, std::chrono::month{static_cast<unsigned>(*month)},
                                         std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok() || *hour > 23 || *minute > 59 || *second > 60) return std::nullopt;

  std::size_t pos = 19;
  std::int64_t millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::size_t count = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (count < 3) millis = millis * 10 + (text[pos] - '0');
      ++count;
      ++pos;
    }
    if (count == 0) return std::nullopt;
    for (std::size_t i = count; i < 3; ++i) millis *= 10;
  }
  std::int64_t offset_minutes = 0;
  if (pos + 1 == text.size() && text[pos] == 'Z') {
    // UTC
  } else if (pos + 6 == text.size() && (text[pos] == '+' || text[pos] == '-') && text[pos + 3] == ':') {
    const auto off_hour = Digits(text, pos + 1, 2), off_minute = Digits(text, pos + 4, 2);
    if (!off_hour || !off_minute || *off_hour > 23 || *off_minute > 59) return std::nullopt;
    offset_minutes = (*off_hour * 60 + *off_minute) * (text[pos] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
  const std::int64_t seconds = days * 86400 + *hour * 3600 + *minute * 60 + *second - offset_minutes * 60;
  return seconds * 1000 + millis;
}

std::int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The smallest string greater than every string that starts with `prefix` (byte order, which is
// SQLite's BINARY collation): the prefix with its last byte incremented, dropping trailing 0xff
// bytes first. None when the prefix is all 0xff bytes (or empty).
std::optional<std::string> PrefixUpperBound(std::string_view prefix) {
  std::string upper(prefix);
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xff) upper.pop_back();
  if (upper.empty()) return std::nullopt;
  upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
  return upper;
}

// Sorted, without duplicates: a value repeated across chunks would be reported twice.
std::vector<std::string> Distinct(const std::vector<std::string>& values) {
  std::vector<std::string> out(values);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace plyr::labeler::log_util
