// Helpers both engines of the label log share (internal to labeler/).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/sqlite_db.h"
#include "common/status.h"

namespace plyr::labeler::log_util {

// The refusal of a label without its signature or CBOR, or with an unreadable exp.
Status InvalidLabel();
// A row limit as the databases take it.
std::int64_t ClampLimit(std::size_t limit);
// An ATProto datetime ("YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)") as Unix milliseconds,
// the fraction truncated; nullopt when it is not one.
std::optional<std::int64_t> DatetimeToUnixMs(std::string_view text);
std::int64_t NowUnixMs();
// The smallest string greater than every string that starts with `prefix` (byte order); none
// when the prefix is all 0xff bytes (or empty).
std::optional<std::string> PrefixUpperBound(std::string_view prefix);
// Sorted, without duplicates.
std::vector<std::string> Distinct(const std::vector<std::string>& values);

// A queryLabels request's patterns, sorted out: "*" (everything), exact uris and prefixes (the
// pattern before its trailing '*'), each list without duplicates. InvalidArgument for a '*'
// anywhere but at the end.
struct UriPatterns {
  bool match_all = false;
  std::vector<std::string> exact;
  std::vector<std::string> prefixes;
  bool none() const { return !match_all && exact.empty() && prefixes.empty(); }
};
StatusOr<UriPatterns> SplitUriPatterns(const std::vector<std::string>& patterns);

// A queryLabels request's terms, sorted out for one statement: its patterns (as above) and its
// sources without duplicates. When the patterns match nothing (none()), sources is left empty and
// nothing is counted; otherwise InvalidArgument when the statement would bind more than
// `max_params` values.
struct QueryTerms {
  UriPatterns patterns;
  std::vector<std::string> sources;
};
StatusOr<QueryTerms> SortOutQueryTerms(const std::vector<std::string>& uri_patterns,
                                       const std::vector<std::string>& sources, std::size_t max_params);

// IN lists are cut into chunks of at most this many values, far below SQLite's variable limit.
inline constexpr std::size_t kMaxInChunk = 500;

// Builds one statement's SQL and its positional parameters side by side, so values are only
// ever bound, never spliced into the text. Parameters are written "?1" (SQLite) or "$1"
// (PostgreSQL).
class SqlBuilder {
 public:
  enum class Style { kSqlite, kPostgres };
  explicit SqlBuilder(std::string_view head, Style style = Style::kSqlite) : sql_(head), style_(style) {}
  SqlBuilder& Text(std::string_view text);
  SqlBuilder& Param(SqlValue value);
  // "column IN (?a, ?b, ...)" over one chunk, padded (by repeating its last value, which IN
  // ignores) up to one of a few sizes, so every IN list has one of a few shapes and its statement
  // stays in the connection's cache.
  SqlBuilder& In(std::string_view column, std::span<const std::string> values);
  // "(column IN (...) OR column IN (...))" over any number of values (at least one).
  SqlBuilder& InChunked(std::string_view column, std::span<const std::string> values);
  const std::string& sql() const { return sql_; }
  const std::vector<SqlValue>& params() const { return params_; }

 private:
  std::string sql_;
  Style style_;
  std::vector<SqlValue> params_;
};

}  // namespace plyr::labeler::log_util
