#include "common/log.h"

#include <string>

#include <spdlog/sinks/stdout_sinks.h>

namespace plyr {

void InitLogging(std::string_view level) {
  auto logger = spdlog::stdout_logger_mt("plyr");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
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
