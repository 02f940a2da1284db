#include "common/media/ffmpeg_util.h"

#include <cstdarg>
#include <cstdio>
#include <mutex>

#include <spdlog/spdlog.h>

namespace plyr::media {

std::string AvErrorText(int error) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(error, text, sizeof text);
  return text;
}

namespace {

void LogToSpdlog(void*, int level, const char* format, va_list args) {
  if (level > AV_LOG_WARNING || !spdlog::should_log(spdlog::level::debug)) return;
  char line[512];
  std::vsnprintf(line, sizeof line, format, args);
  std::string_view text(line);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (!text.empty()) spdlog::debug("ffmpeg: {}", text);
}

}  // namespace

void QuietFfmpegLogs() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(LogToSpdlog); });
}

}  // namespace plyr::media
