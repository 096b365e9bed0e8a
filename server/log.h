// Minimal timestamped logging to stderr. The Abseil of Debian 12 predates absl/log, and the
// server logs little: start-up, model loading, shutdown, and errors. Errors a client can cause
// again and again go through a LogLimiter, so no client can flood the log.
#pragma once

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace elliptical::server {

enum class LogLevel { kInfo, kWarning, kError };

// Writes one line; a failing stderr (a full disk, a closed pipe) drops the line and nothing else.
void LogLine(LogLevel level, absl::string_view message);

// Lines longer than this are cut, with a note of how much was cut: messages may quote client data.
inline constexpr size_t kMaxLogLineBytes = 2048;

// A budget of `burst` lines per `period` for one kind of line; what it refuses is counted and
// reported with the next line it allows. Thread-safe.
class LogLimiter {
 public:
  explicit LogLimiter(int burst = 5, absl::Duration period = absl::Seconds(10))
      : burst_(burst), period_(period) {}

  // True when a line may be written now; `*suppressed` is then the number refused before it.
  bool Allow(int64_t* suppressed);

 private:
  const int burst_;
  const absl::Duration period_;
  absl::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int in_window_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

void LogLimitedLine(LogLimiter* limiter, LogLevel level, absl::string_view message);

template <typename... Args>
void LogInfo(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kInfo, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogWarning(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kWarning, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogError(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kError, absl::StrFormat(format, args...));
}
// Formats only when the limiter allows the line.
template <typename... Args>
void LogErrorLimited(LogLimiter* limiter, const absl::FormatSpec<Args...>& format, const Args&... args) {
  int64_t suppressed = 0;
  if (!limiter->Allow(&suppressed)) return;
  std::string line = absl::StrFormat(format, args...);
  if (suppressed > 0) absl::StrAppend(&line, " (", suppressed, " similar lines suppressed)");
  LogLine(LogLevel::kError, line);
}

// Routes libprotobuf's own log (for example its complaint about invalid UTF-8 in a client's
// string field, once per request) through LogLine, rate-limited.
void RouteProtobufLog();

}  // namespace elliptical::server
