// How many compute threads a vision model's next batch uses: its instance's share, or, when the
// model has been computing one batch at a time for a while, every instance's threads.
//
// Why the quiet period: a batch that takes every core and is then joined by a batch on another
// instance oversubscribes the cores until it ends (measured: 8 closed-loop clients served ~8%
// fewer images/s when every momentarily lone batch borrowed). A model whose batches overlapped
// within `quiet` is under load, where one share per instance is the faster layout; a lone client
// (one request at a time) never overlaps and gets every core.
//
// Thread-safety: ThreadsFor may be called from every instance thread at once.
#pragma once

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace elliptical::server {

class ThreadLending {
 public:
  ThreadLending(int per_instance, int all_instances, absl::Duration quiet)
      : per_instance_(per_instance), all_(all_instances), quiet_ns_(absl::ToInt64Nanoseconds(quiet)) {}

  // `running_batches` (this one included) and `queued_items` as the batcher reports them when the
  // batch starts; `now` is the batcher's clock.
  int ThreadsFor(int running_batches, int queued_items, absl::Time now) {
    const int64_t t = absl::ToUnixNanos(now);
    if (running_batches > 1 || queued_items > 0) {
      last_contended_ns_.store(t, std::memory_order_relaxed);
      return per_instance_;
    }
    const int64_t last = last_contended_ns_.load(std::memory_order_relaxed);
    return t - last < quiet_ns_ ? per_instance_ : all_;
  }

 private:
  const int per_instance_;
  const int all_;
  const int64_t quiet_ns_;
  std::atomic<int64_t> last_contended_ns_{INT64_MIN / 2};
};

}  // namespace elliptical::server
