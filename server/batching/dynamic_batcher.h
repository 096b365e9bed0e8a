// A dynamic batcher that knows nothing about models: Schedule() queues a task and returns at
// once; instance threads (one per model instance, Triton's instance groups) take batches from
// one BatchQueue (batch_queue.h holds the policy) and call the owner's batch function; each
// task's callback gets its results. Nothing blocks per task and nothing polls: a thread sleeps
// until a task arrives, a queue delay or deadline falls due, or a batch completes.
//
// An exception escaping the batch function fails that batch's tasks with INTERNAL and the
// instance keeps serving. Shutdown stops accepting, runs everything queued, then joins: no
// accepted task is lost.
//
// Thread-safety: Schedule, Cancel and the accessors may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/exception_guard.h"
#include "server/batching/batch_queue.h"
#include "server/batching/clock.h"
#include "server/log.h"

namespace elliptical::server {

// Observers for metrics; called on instance threads.
struct BatcherObserver {
  std::function<void(int instance, int batch_size, absl::Duration compute)> on_batch;
};

template <typename Item, typename Result>
class DynamicBatcher {
 public:
  using Task = BatchTask<Item, Result>;
  // Runs one batch of compatible items on `context.instance`; one result per item, or one error.
  using RunBatch = std::function<absl::StatusOr<std::vector<Result>>(const std::vector<const Item*>&,
                                                                     const BatchContext& context)>;

  struct Options {
    BatchingOptions batching;
    int instances = 1;
    // Called first on each instance's thread (to set its compute threads, for example).
    std::function<void(int instance)> on_instance_start;
    // Called on the instance's thread before each batch with the number of batches computing
    // now (this one included) and the items still queued, so the owner can size the batch's
    // compute (a lone batch may take the idle instances' threads).
    std::function<void(int instance, int running_batches, int queued_items)> on_batch_start;
    BatcherObserver observer;
    const Clock* clock = Clock::Real();
  };

  DynamicBatcher(std::string name, Options options, RunBatch run)
      : name_(std::move(name)),
        options_(std::move(options)),
        run_(std::move(run)),
        queue_(name_, options_.batching) {
    for (int i = 0; i < std::max(1, options_.instances); ++i) {
      threads_.emplace_back([this, i] { Work(i); });
    }
  }
  ~DynamicBatcher() { Shutdown(); }

  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Queues `task` and returns its handle; the task is taken only when this returns OK. Errors:
  // RESOURCE_EXHAUSTED (queue full: retry later), UNAVAILABLE (shutting down), INVALID_ARGUMENT.
  absl::StatusOr<uint64_t> Schedule(Task task) {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError(absl::StrCat("model ", name_, " is shutting down"));
    auto id = queue_.Add(std::move(task), options_.clock->Now());
    if (id.ok()) work_cv_.Signal();
    return id;
  }

  // The task's callback runs with CANCELLED now if nothing of it is running, else when its
  // running items complete (its waiting items never run).
  void Cancel(uint64_t handle) {
    std::optional<typename BatchQueue<Item, Result>::Completion> done;
    {
      absl::MutexLock lock(&mu_);
      done = queue_.Cancel(handle, absl::CancelledError("the client cancelled the request"));
    }
    if (done) done->Deliver();
  }

  // Stops accepting, runs every queued task, joins the instances. Idempotent.
  void Shutdown() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      work_cv_.SignalAll();
    }
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  int queued_items() const {
    absl::MutexLock lock(&mu_);
    return queue_.queued_items();
  }
  int busy_instances() const {
    absl::MutexLock lock(&mu_);
    return busy_;
  }
  int instances() const { return static_cast<int>(threads_.size()); }

 private:
  using Queue = BatchQueue<Item, Result>;

  static void DeliverAll(std::vector<typename Queue::Completion>* done) {
    for (auto& c : *done) c.Deliver();
    done->clear();
  }

  void Work(int instance) {
    if (options_.on_instance_start) options_.on_instance_start(instance);
    std::vector<typename Queue::Completion> done;
    for (;;) {
      std::optional<typename Queue::Batch> batch;
      int running = 0, queued = 0;
      {
        absl::MutexLock lock(&mu_);
        for (;;) {
          absl::Time wake_at;
          batch = queue_.Take(options_.clock->Now(), stopping_, &wake_at, &done);
          if (batch || !done.empty()) break;
          if (stopping_ && queue_.empty()) return;
          options_.clock->WaitUntil(&mu_, &work_cv_, wake_at);
        }
        if (batch) {
          running = ++busy_;
          queued = queue_.queued_items();
        }
      }
      DeliverAll(&done);  // expired tasks
      if (!batch) continue;
      if (options_.on_batch_start) options_.on_batch_start(instance, running, queued);

      const absl::Time start = options_.clock->Now();
      BatchContext context;
      context.instance = instance;
      context.abandoned = [this, &batch] {
        absl::MutexLock lock(&mu_);
        return queue_.Abandoned(*batch, options_.clock->Now());
      };
      absl::StatusOr<std::vector<Result>> results =
          GuardExceptions(name_, "the batch", [&] { return run_(batch->items(), context); });
      if (results.status().code() == absl::StatusCode::kInternal) {
        LogErrorLimited(&error_log_, "%s", results.status().message());
      }
      const absl::Duration compute = options_.clock->Now() - start;
      if (options_.observer.on_batch) {
        options_.observer.on_batch(instance, static_cast<int>(batch->slots.size()), compute);
      }
      {
        absl::MutexLock lock(&mu_);
        if (!results.ok()) queue_.MarkExpired(*batch, options_.clock->Now());
        queue_.Complete(*batch, std::move(results), compute, instance, &done);
        --busy_;
        // Another instance may be waiting for a batch to finish (max_queue_delay) or to drain.
        work_cv_.Signal();
      }
      batch.reset();
      DeliverAll(&done);
    }
  }

  const std::string name_;
  const Options options_;
  const RunBatch run_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;
  Queue queue_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  LogLimiter error_log_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace elliptical::server
