#include "common/log.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "common/json_text.h"

namespace plyr {

namespace {

bool IsKeyChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; }

// True when `v` is a number as JSON writes one: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
// (so ".9", "+5", "007", "inf" and "1." stay strings) that a double holds finite, with an exponent
// of at most 308: "5e7777777" and "0e309" (a finite zero) stay strings, as JSON readers refuse
// them or read them wrong (Boost.JSON 1.81 reads 0e309 as NaN).
bool LooksLikeNumber(std::string_view v) {
  if (v.empty() || v.size() > 24) return false;
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t start = i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) ++i;
    return i - start;
  };
  if (v[i] == '-') ++i;
  if (i < v.size() && v[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return false;
  }
  if (i < v.size() && v[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  }
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
    const std::size_t exponent_start = i;
    const std::size_t exponent_digits = digits();
    int exponent = 0;
    std::from_chars(v.data() + exponent_start, v.data() + i, exponent);
    if (exponent_digits == 0 || exponent_digits > 3 || exponent > 308) return false;
  }
  if (i != v.size()) return false;
  double parsed = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
  return ec == std::errc{} && end == v.data() + v.size() && std::isfinite(parsed);
}

// Splits "text key=value key2="quoted value"" into the text and the pairs; nullopt when the
// message does not end in well-formed pairs.
std::optional<std::pair<std::string_view, std::vector<std::pair<std::string_view, std::string>>>> SplitFields(
    std::string_view message) {
  // The text ends at the first " key=" whose key is a plain word.
  std::size_t start = std::string_view::npos;
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (i != 0 && message[i - 1] != ' ') continue;
    std::size_t j = i;
    while (j < message.size() && IsKeyChar(message[j])) ++j;
    if (j > i && j < message.size() && message[j] == '=') {
      start = i;
      break;
    }
  }
  if (start == std::string_view::npos) return std::nullopt;
  std::vector<std::pair<std::string_view, std::string>> fields;
  std::size_t i = start;
  while (i < message.size()) {
    std::size_t eq = i;
    while (eq < message.size() && IsKeyChar(message[eq])) ++eq;
    if (eq == i || eq >= message.size() || message[eq] != '=') return std::nullopt;
    std::string_view key = message.substr(i, eq - i);
    std::size_t v = eq + 1;
    std::string value;
    if (v < message.size() && message[v] == '"') {
      std::size_t k = v + 1;
      for (; k < message.size() && message[k] != '"'; ++k) {
        if (message[k] == '\\' && k + 1 < message.size()) ++k;
        value += message[k];
      }
      if (k >= message.size()) return std::nullopt;  // unterminated quote
      i = k + 1;
    } else {
      std::size_t k = message.find(' ', v);
      if (k == std::string_view::npos) k = message.size();
      value = std::string(message.substr(v, k - v));
      i = k;
    }
    fields.emplace_back(key, std::move(value));
    if (i < message.size()) {
      if (message[i] != ' ') return std::nullopt;
      ++i;
    }
  }
  std::string_view text = message.substr(0, start);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return std::make_pair(text, std::move(fields));
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    const std::string line = JsonLogLine(msg.time, std::string_view(level.data(), level.size()),
                                         std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

std::string JsonLogLine(std::chrono::system_clock::time_point time, std::string_view level,
                        std::string_view message) {
  const auto seconds = std::chrono::system_clock::to_time_t(time);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);

  std::string out = fmt::format("{{\"ts\":\"{}.{:03}Z\",\"level\":", stamp, millis);
  AppendJsonString(out, level);
  out += ",\"msg\":";
  auto split = SplitFields(message);
  if (!split) {
    AppendJsonString(out, message);
  } else {
    AppendJsonString(out, split->first);
    for (const auto& [key, value] : split->second) {
      if (key == "ts" || key == "level" || key == "msg") continue;  // never shadow the line's own
      out += ',';
      AppendJsonString(out, key);
      out += ':';
      if (LooksLikeNumber(value)) {
        out += value;
      } else {
        AppendJsonString(out, value);
      }
    }
  }
  out += '}';
  return out;
}

void InitLogging(std::string_view level, std::string_view format) {
  auto logger = spdlog::stdout_logger_mt("plyr");
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  }
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps unknown names to "off"; a typo must not silence the process.
  if (parsed == spdlog::level::off && level != "off") parsed = spdlog::level::info;
  logger->set_level(parsed);
  // Flushing every info line costs a write(2) per request under load; warnings flush at once,
  // the rest at least once a second.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  spdlog::flush_every(std::chrono::seconds(1));
}

}  // namespace plyr
