// What a caller hands the batcher: a task of items that must all run, in batches shared with
// other callers' items, and a callback for the results. The vocabulary follows TF Serving's
// batch scheduler: a task knows its size (its items), Schedule() takes it only when it returns
// OK, and the error says whether to retry.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace elliptical::server {

// Lower value, served first. A task that has waited `max_priority_wait` is served as kHigh, so
// a low priority is delayed by a bounded amount, never starved.
enum class Priority : int { kHigh = 0, kNormal = 1, kLow = 2 };
inline constexpr int kPriorityLevels = 3;

struct BatchingOptions {
  int max_batch_size = 8;
  // How long the oldest task may wait for a fuller batch while an instance is idle. Zero (the
  // default) runs what is queued as soon as an instance is free: batches then form only while
  // every instance is computing, which costs a lone client nothing.
  absl::Duration max_queue_delay = absl::ZeroDuration();
  int max_queued_items = 256;
  absl::Duration max_priority_wait = absl::Milliseconds(100);
};

// How a task was served, for its response and for metrics.
struct BatchTiming {
  absl::Duration queue;    // scheduled until its first item started computing
  absl::Duration compute;  // total time of the batches its items ran in
  int batch_size = 0;      // largest batch its items ran in
  int instance = -1;       // the instance that ran its last batch
};

// What a batch function may ask while it runs.
struct BatchContext {
  int instance = 0;
  std::function<bool()> abandoned;
  // True once every task in the batch is cancelled or past its deadline: the function may stop
  // at its next unit of work and return any error; each task then finishes with its own status.
  bool Abandoned() const { return abandoned && abandoned(); }
};

template <typename Item, typename Result>
struct BatchTask {
  // Called exactly once, on a batcher thread or in Cancel's caller, never under a batcher lock:
  // with one result per item in item order, or one error for the whole task.
  using Done = std::function<void(absl::StatusOr<std::vector<Result>>, const BatchTiming&)>;

  std::vector<Item> items;  // at least one
  uint64_t key = 0;         // items with different keys never share a batch
  absl::Time deadline = absl::InfiniteFuture();
  Priority priority = Priority::kNormal;
  Done on_done;
};

}  // namespace elliptical::server
