#include "server/log.h"

#include <cstdio>

#include <google/protobuf/stubs/logging.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace elliptical::server {

void LogLine(LogLevel level, absl::string_view message) {
  const char* tag = level == LogLevel::kInfo ? "I" : level == LogLevel::kWarning ? "W" : "E";
  std::string line = absl::StrFormat(
      "%s %s ", tag, absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()));
  if (message.size() > kMaxLogLineBytes) {
    absl::StrAppend(&line, message.substr(0, kMaxLogLineBytes), "... (", message.size() - kMaxLogLineBytes,
                    " more bytes)");
  } else {
    absl::StrAppend(&line, message);
  }
  line.push_back('\n');
  // One write, so lines from threads stay whole; its result is ignored on purpose: a server
  // whose log cannot be written keeps serving.
  (void)!std::fwrite(line.data(), 1, line.size(), stderr);
}

bool LogLimiter::Allow(int64_t* suppressed) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (now - window_start_ >= period_) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= burst_) {
    ++suppressed_;
    return false;
  }
  ++in_window_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

void LogLimitedLine(LogLimiter* limiter, LogLevel level, absl::string_view message) {
  int64_t suppressed = 0;
  if (!limiter->Allow(&suppressed)) return;
  if (suppressed == 0) return LogLine(level, message);
  LogLine(level, absl::StrCat(message, " (", suppressed, " similar lines suppressed)"));
}

namespace {

void ProtobufLogHandler(google::protobuf::LogLevel level, const char* filename, int line,
                        const std::string& message) {
  static LogLimiter limiter;
  const LogLevel ours = level == google::protobuf::LOGLEVEL_INFO      ? LogLevel::kInfo
                        : level == google::protobuf::LOGLEVEL_WARNING ? LogLevel::kWarning
                                                                      : LogLevel::kError;
  LogLimitedLine(&limiter, ours, absl::StrCat("libprotobuf ", filename, ":", line, ": ", message));
}

}  // namespace

void RouteProtobufLog() { google::protobuf::SetLogHandler(&ProtobufLogHandler); }

}  // namespace elliptical::server
