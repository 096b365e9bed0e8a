// The batching policy, with no threads and no clock of its own: tasks wait here, and Take()
// says which items an idle instance runs next at a given time. DynamicBatcher drives it from its
// instance threads; tests drive it directly with chosen times.
//
// Policy:
// - The head of the queue is the oldest task of the best effective priority (a task waiting
//   longer than max_priority_wait counts as kHigh). A batch is the head's items, filled with
//   the items of other tasks with the same key in the same order. A task with more items than
//   fit spans batches.
// - An idle instance takes a batch at once, unless max_queue_delay is set: then it waits until
//   the head's items alone fill a batch or the head has waited max_queue_delay.
// - Tasks past their deadline or cancelled before any of their items ran are finished
//   (DEADLINE_EXCEEDED / CANCELLED) and never take a batch slot. A running batch whose every
//   task is cancelled or past its deadline is Abandoned(): its function may stop early.
// - Bounded: beyond max_queued_items waiting items, Add fails with RESOURCE_EXHAUSTED.
//
// Not thread-safe: the owner serialises calls.
#pragma once

#include <algorithm>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/batching/batch_task.h"

namespace elliptical::server {

template <typename Item, typename Result>
class BatchQueue {
 public:
  using Task = BatchTask<Item, Result>;

  // A finished task's callback with what to call it with, delivered by the owner outside its
  // lock.
  struct Completion {
    typename Task::Done on_done;
    absl::StatusOr<std::vector<Result>> result;
    BatchTiming timing;
    void Deliver() {
      if (on_done) on_done(std::move(result), timing);
    }
  };

 private:
  struct Request {
    uint64_t id = 0;
    Task task;
    absl::Time enqueued;
    size_t next = 0;    // first item not yet taken into a batch
    int in_flight = 0;  // taken, not yet completed
    size_t done = 0;
    bool started = false;
    absl::Status status;  // first error, or the cancellation
    std::vector<std::optional<Result>> results;
    BatchTiming timing;
  };

 public:
  struct Slot {
    std::shared_ptr<Request> request;
    size_t index;
  };
  struct Batch {
    std::vector<Slot> slots;
    std::vector<const Item*> items() const {
      std::vector<const Item*> out;
      out.reserve(slots.size());
      for (const Slot& s : slots) out.push_back(&s.request->task.items[s.index]);
      return out;
    }
  };

  BatchQueue(std::string name, BatchingOptions options) : name_(std::move(name)), options_(options) {}

  // Returns the task's handle for Cancel. RESOURCE_EXHAUSTED (retry later) when the queue is
  // full; INVALID_ARGUMENT when the task holds no items or more than the queue can ever hold.
  absl::StatusOr<uint64_t> Add(Task task, absl::Time now) {
    const int n = static_cast<int>(task.items.size());
    if (n == 0) return absl::InvalidArgumentError("a batch task needs at least one item");
    if (n > options_.max_queued_items) {
      return absl::InvalidArgumentError(absl::StrCat("the request holds ", n, " items; model ", name_,
                                                     " queues at most ", options_.max_queued_items));
    }
    if (queued_items_ + n > options_.max_queued_items) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "model ", name_, " is overloaded: its queue holds ", queued_items_, " of ",
          options_.max_queued_items, " items; retry later with backoff"));
    }
    auto r = std::make_shared<Request>();
    r->id = ++last_id_;
    r->task = std::move(task);
    r->enqueued = now;
    r->results.resize(n);
    queue_.push_back(r);
    live_[r->id] = r;
    queued_items_ += n;
    return r->id;
  }

  // Finishes the task with `why` if none of its items is running (its completion is returned);
  // otherwise its waiting items are dropped and it finishes with `why` when the running ones
  // complete, and Abandoned() tells their batches. Unknown or finished handles are ignored.
  std::optional<Completion> Cancel(uint64_t id, absl::Status why) {
    auto found = live_.find(id);
    if (found == live_.end()) return std::nullopt;
    std::shared_ptr<Request> r = found->second;  // the slots of running batches share it
    if (r->status.ok()) r->status = std::move(why);
    DropQueued(r.get());
    if (r->in_flight == 0) return Finish(*r);
    return std::nullopt;
  }

  // True when no task with items in `batch` still wants its results: each is cancelled, failed
  // or past its deadline at `now`.
  bool Abandoned(const Batch& batch, absl::Time now) const {
    for (const Slot& s : batch.slots) {
      if (s.request->status.ok() && now < s.request->task.deadline) return false;
    }
    return true;
  }

  // Before Complete with an error: the tasks of `batch` past their deadline finish with
  // DEADLINE_EXCEEDED rather than the batch's error (their work was stopped for it).
  void MarkExpired(const Batch& batch, absl::Time now) {
    for (const Slot& s : batch.slots) {
      Request& r = *s.request;
      if (r.status.ok() && now >= r.task.deadline) {
        r.status = absl::DeadlineExceededError(absl::StrCat(
            "deadline exceeded while model ", name_, " computed; its work was stopped"));
      }
    }
  }

  // The next batch for an idle instance, or none: then `*wake_at` is when to ask again
  // (InfiniteFuture: when something is added). `drain` ignores max_queue_delay (shutdown).
  // Tasks found expired are finished into `*finished`.
  std::optional<Batch> Take(absl::Time now, bool drain, absl::Time* wake_at,
                            std::vector<Completion>* finished) {
    *wake_at = absl::InfiniteFuture();
    Expire(now, finished);
    if (queue_.empty()) return std::nullopt;
    std::vector<std::shared_ptr<Request>> order = ServiceOrder(now);
    const Request* head = order.front().get();
    const absl::Time flush_at = head->enqueued + options_.max_queue_delay;
    if (!drain && now < flush_at &&
        static_cast<int>(head->task.items.size() - head->next) < options_.max_batch_size &&
        AvailableFor(head->task.key) < options_.max_batch_size) {
      *wake_at = std::min(flush_at, EarliestDeadline());
      return std::nullopt;
    }
    Batch batch;
    for (const std::shared_ptr<Request>& r : order) {
      if (static_cast<int>(batch.slots.size()) >= options_.max_batch_size) break;
      if (r->task.key != head->task.key) continue;
      if (!r->started) {
        r->started = true;
        r->timing.queue = now - r->enqueued;
      }
      while (r->next < r->task.items.size() && static_cast<int>(batch.slots.size()) < options_.max_batch_size) {
        batch.slots.push_back({r, r->next++});
        ++r->in_flight;
        --queued_items_;
      }
    }
    queue_.remove_if([](const std::shared_ptr<Request>& r) { return r->next == r->task.items.size(); });
    return batch;
  }

  // Records a batch's outcome: one result per item, or one error for all of them.
  void Complete(const Batch& batch, absl::StatusOr<std::vector<Result>> results, absl::Duration compute,
                int instance, std::vector<Completion>* finished) {
    if (results.ok() && results->size() != batch.slots.size()) {
      results = absl::InternalError(absl::StrCat("model ", name_, ": the batch function returned ",
                                                 results->size(), " results for ", batch.slots.size(),
                                                 " items"));
    }
    Request* previous = nullptr;
    for (size_t i = 0; i < batch.slots.size(); ++i) {
      Request& r = *batch.slots[i].request;
      if (&r != previous) {  // once per task per batch
        r.timing.compute += compute;
        r.timing.batch_size = std::max(r.timing.batch_size, static_cast<int>(batch.slots.size()));
        r.timing.instance = instance;
        previous = &r;
      }
      --r.in_flight;
      ++r.done;
      if (results.ok()) {
        r.results[batch.slots[i].index] = std::move((*results)[i]);
      } else if (r.status.ok()) {
        r.status = results.status();
        DropQueued(&r);  // the rest of a failed task would be wasted work
      }
      const bool all_done = r.done == r.task.items.size();
      const bool abandoned = !r.status.ok() && r.in_flight == 0 && r.next == r.task.items.size();
      if (all_done || abandoned) finished->push_back(Finish(r));
    }
  }

  int queued_items() const { return queued_items_; }
  bool empty() const { return queue_.empty(); }

 private:
  Completion Finish(Request& r) {
    live_.erase(r.id);
    Completion c;
    c.on_done = std::move(r.task.on_done);
    c.timing = r.timing;
    if (!r.status.ok()) {
      c.result = r.status;
    } else {
      std::vector<Result> out;
      out.reserve(r.results.size());
      for (auto& one : r.results) out.push_back(std::move(*one));
      c.result = std::move(out);
    }
    r.results.clear();
    return c;
  }

  int Level(const Request& r, absl::Time now) const {
    if (now - r.enqueued >= options_.max_priority_wait) return static_cast<int>(Priority::kHigh);
    return static_cast<int>(r.task.priority);
  }

  std::vector<std::shared_ptr<Request>> ServiceOrder(absl::Time now) const {
    std::vector<std::shared_ptr<Request>> order(queue_.begin(), queue_.end());
    // Stable: within a level, arrival order (the queue is kept in arrival order).
    std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
      return Level(*a, now) < Level(*b, now);
    });
    return order;
  }

  // Takes a task's items that have not started out of the queue.
  void DropQueued(Request* r) {
    if (r->next == r->task.items.size()) return;
    queued_items_ -= static_cast<int>(r->task.items.size() - r->next);
    r->next = r->task.items.size();
    queue_.remove_if([r](const std::shared_ptr<Request>& q) { return q.get() == r; });
  }

  void Expire(absl::Time now, std::vector<Completion>* finished) {
    std::vector<uint64_t> dead;
    for (const auto& r : queue_) {
      if (r->in_flight == 0 && !r->started && now >= r->task.deadline) dead.push_back(r->id);
    }
    for (uint64_t id : dead) {
      auto c = Cancel(id, absl::DeadlineExceededError(absl::StrCat(
                              "deadline exceeded while queued for model ", name_,
                              "; the server is busy: allow a longer deadline or retry later")));
      if (c) finished->push_back(std::move(*c));
    }
  }

  absl::Time EarliestDeadline() const {
    absl::Time t = absl::InfiniteFuture();
    for (const auto& r : queue_) {
      if (!r->started) t = std::min(t, r->task.deadline);
    }
    return t;
  }

  int AvailableFor(uint64_t key) const {
    int n = 0;
    for (const auto& r : queue_) {
      if (r->task.key == key) n += static_cast<int>(r->task.items.size() - r->next);
    }
    return n;
  }

  const std::string name_;
  const BatchingOptions options_;
  std::list<std::shared_ptr<Request>> queue_;  // arrival order
  std::unordered_map<uint64_t, std::shared_ptr<Request>> live_;  // every unfinished task, by handle
  int queued_items_ = 0;
  uint64_t last_id_ = 0;
};

}  // namespace elliptical::server
