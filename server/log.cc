#include "server/log.h"

#include <cstdio>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace elliptical::server {

void LogLine(LogLevel level, absl::string_view message) {
  const char* tag = level == LogLevel::kInfo ? "I" : level == LogLevel::kWarning ? "W" : "E";
  const std::string line =
      absl::StrFormat("%s %s %s\n", tag,
                      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
                      message);
  std::fwrite(line.data(), 1, line.size(), stderr);  // one write: lines from threads stay whole
}

}  // namespace elliptical::server
