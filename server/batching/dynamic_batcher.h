// A dynamic batcher that knows nothing about models. Callers submit requests made of items (an
// image each); one worker thread per batcher forms batches of up to `max_batch_size` compatible
// items (same key) and hands them to a function its owner supplies, so the device is driven by
// one thread and request threads only wait.
//
// Policy:
// - FIFO by request: a batch is formed around the oldest waiting item, filled with the next
//   compatible items, so no key starves under mixed load. A request with several items counts
//   as several batch slots and may span batches.
// - A batch runs when it is full, or when its oldest item has waited `max_queue_delay`.
// - The queue is bounded in items: beyond `max_queued_items`, Run fails at once with
//   RESOURCE_EXHAUSTED (explicit load shedding rather than unbounded latency).
// - A request whose deadline passes or whose caller cancels before its items run is dropped:
//   it never takes a batch slot.
// - Shutdown stops accepting and runs everything already queued: no accepted item is lost.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace elliptical::server {

struct BatchingOptions {
  int max_batch_size = 8;
  absl::Duration max_queue_delay = absl::Milliseconds(2);
  int max_queued_items = 256;
};

// How a request was served, for its response and for metrics.
struct BatchTiming {
  absl::Duration queue;    // enqueue until its first item started computing
  absl::Duration compute;  // total time of the batches its items ran in
  int batch_size = 0;      // largest batch its items ran in
};

// Observers for metrics; each called on the worker thread.
struct BatcherObserver {
  std::function<void(int batch_size, absl::Duration compute)> on_batch;
};

template <typename Item, typename Result>
class DynamicBatcher {
 public:
  // Runs one batch of compatible items; returns one result per item, or one error for all.
  using RunBatch = std::function<absl::StatusOr<std::vector<Result>>(const std::vector<const Item*>&)>;

  DynamicBatcher(std::string name, BatchingOptions options, RunBatch run,
                 BatcherObserver observer = {})
      : name_(std::move(name)), options_(options), run_(std::move(run)), observer_(std::move(observer)) {
    worker_ = std::thread([this] { Work(); });
  }
  ~DynamicBatcher() { Shutdown(); }

  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Blocks until every item has run; results are in item order. Items with different keys
  // never share a batch. `cancelled` is polled while the request waits.
  absl::StatusOr<std::vector<Result>> Run(std::vector<Item> items, uint64_t key, absl::Time deadline,
                                          std::function<bool()> cancelled, BatchTiming* timing) {
    auto request = std::make_shared<Request>();
    request->items = std::move(items);
    request->key = key;
    request->deadline = deadline;
    request->cancelled = std::move(cancelled);
    request->enqueued = absl::Now();
    request->results.resize(request->items.size());
    const int n = static_cast<int>(request->items.size());
    if (n == 0) return std::vector<Result>();

    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return absl::UnavailableError(absl::StrCat("model ", name_, " is shutting down"));
    }
    if (queued_items_ + n > options_.max_queued_items) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "model ", name_, " is overloaded: ", queued_items_, " items are queued (limit ",
          options_.max_queued_items, "); retry later with backoff"));
    }
    queue_.push_back(request);
    queued_items_ += n;
    work_cv_.Signal();

    while (!request->finished) {
      // Wake at the deadline, and now and then to notice a cancelled caller.
      done_cv_.WaitWithDeadline(&mu_, std::min(deadline, absl::Now() + absl::Milliseconds(20)));
      if (request->finished) break;
      const bool expired = absl::Now() >= deadline;
      if ((expired || (request->cancelled && request->cancelled())) && request->in_flight == 0) {
        Abandon(request, expired ? absl::DeadlineExceededError(DeadlineMessage())
                                 : absl::CancelledError("the client cancelled the request"));
      }
    }
    if (timing) *timing = request->timing;
    if (!request->status.ok()) return request->status;
    std::vector<Result> out;
    out.reserve(n);
    for (auto& r : request->results) out.push_back(std::move(*r));
    return out;
  }

  // Stops accepting, runs every queued item, joins the worker. Idempotent.
  void Shutdown() {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ && !worker_.joinable()) return;
      stopping_ = true;
      work_cv_.Signal();
    }
    if (worker_.joinable()) worker_.join();
  }

  int queued_items() const {
    absl::MutexLock lock(&mu_);
    return queued_items_;
  }

  const BatchingOptions& options() const { return options_; }

 private:
  struct Request {
    std::vector<Item> items;
    uint64_t key = 0;
    absl::Time deadline;
    std::function<bool()> cancelled;
    absl::Time enqueued;
    size_t next = 0;     // first item not yet taken into a batch
    int in_flight = 0;   // taken, not yet finished
    size_t done = 0;
    bool started = false;
    bool finished = false;
    absl::Status status;
    std::vector<std::optional<Result>> results;
    BatchTiming timing;
  };

  std::string DeadlineMessage() const {
    return absl::StrCat("deadline exceeded while queued for model ", name_,
                        "; the server is busy: allow a longer deadline or retry later");
  }

  // Removes a request that has nothing in flight from the queue and finishes it with `status`.
  void Abandon(const std::shared_ptr<Request>& r, absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (*it == r) {
        queue_.erase(it);
        queued_items_ -= static_cast<int>(r->items.size() - r->next);
        break;
      }
    }
    r->next = r->items.size();
    r->status = std::move(status);
    r->finished = true;
    done_cv_.SignalAll();
  }

  // Drops queued requests that expired or were cancelled before any of their items ran.
  void Purge(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::shared_ptr<Request>> dead;
    for (const auto& r : queue_) {
      if (r->in_flight > 0) continue;
      if (now >= r->deadline || (r->cancelled && r->cancelled())) dead.push_back(r);
    }
    for (const auto& r : dead) {
      Abandon(r, now >= r->deadline ? absl::DeadlineExceededError(DeadlineMessage())
                                    : absl::CancelledError("the client cancelled the request"));
    }
  }

  int AvailableFor(uint64_t key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int n = 0;
    for (const auto& r : queue_) {
      if (r->key == key) n += static_cast<int>(r->items.size() - r->next);
    }
    return n;
  }

  void Work() {
    for (;;) {
      struct Slot {
        std::shared_ptr<Request> request;
        size_t index;
      };
      std::vector<Slot> batch;
      {
        absl::MutexLock lock(&mu_);
        while (queue_.empty() && !stopping_) work_cv_.Wait(&mu_);
        if (queue_.empty() && stopping_) return;
        Purge(absl::Now());
        if (queue_.empty()) continue;
        const std::shared_ptr<Request> oldest = queue_.front();
        const absl::Time flush_at = oldest->enqueued + options_.max_queue_delay;
        if (!stopping_ && AvailableFor(oldest->key) < options_.max_batch_size && absl::Now() < flush_at) {
          work_cv_.WaitWithDeadline(&mu_, std::min(flush_at, oldest->deadline));
          continue;  // re-check: more items, an expiry, or the delay has passed
        }
        const absl::Time now = absl::Now();
        for (auto it = queue_.begin(); it != queue_.end() && static_cast<int>(batch.size()) < options_.max_batch_size;) {
          Request& r = **it;
          if (r.key != oldest->key) {
            ++it;
            continue;
          }
          if (!r.started) {
            r.started = true;
            r.timing.queue = now - r.enqueued;
          }
          while (r.next < r.items.size() && static_cast<int>(batch.size()) < options_.max_batch_size) {
            batch.push_back({*it, r.next++});
            ++r.in_flight;
            --queued_items_;
          }
          it = r.next == r.items.size() ? queue_.erase(it) : std::next(it);
        }
      }

      std::vector<const Item*> items;
      for (const Slot& s : batch) items.push_back(&s.request->items[s.index]);
      const absl::Time start = absl::Now();
      absl::StatusOr<std::vector<Result>> results = run_(items);
      const absl::Duration compute = absl::Now() - start;
      if (results.ok() && results->size() != batch.size()) {
        results = absl::InternalError("batch function returned the wrong number of results");
      }
      if (observer_.on_batch) observer_.on_batch(static_cast<int>(batch.size()), compute);

      absl::MutexLock lock(&mu_);
      std::shared_ptr<Request> previous;
      for (size_t i = 0; i < batch.size(); ++i) {
        Request& r = *batch[i].request;
        if (batch[i].request != previous) {  // once per request per batch
          r.timing.compute += compute;
          r.timing.batch_size = std::max(r.timing.batch_size, static_cast<int>(batch.size()));
          previous = batch[i].request;
        }
        --r.in_flight;
        ++r.done;
        if (results.ok()) {
          r.results[batch[i].index] = std::move((*results)[i]);
        } else if (r.status.ok()) {
          r.status = results.status();
        }
        const bool all_done = r.done == r.items.size();
        if (!r.finished && (all_done || (!r.status.ok() && r.in_flight == 0))) {
          if (!all_done) Abandon(batch[i].request, r.status);
          r.finished = true;
        }
      }
      done_cv_.SignalAll();
    }
  }

  const std::string name_;
  const BatchingOptions options_;
  const RunBatch run_;
  const BatcherObserver observer_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;  // the worker waits for items or for the queue delay
  absl::CondVar done_cv_;  // requests wait for their items
  std::deque<std::shared_ptr<Request>> queue_ ABSL_GUARDED_BY(mu_);
  int queued_items_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace elliptical::server
