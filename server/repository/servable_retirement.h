// How a model version leaves without failing a request: the repository never frees a servable
// itself. It hands callers leases (shared handles); a version that is unloaded or replaced
// takes no new requests, and once the last lease is released (its accepted calls and streams
// have finished) the version is shut down and freed on this class's own thread, never on the
// thread of the call that released it (an instance thread cannot join itself).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/serving/servable.h"

namespace elliptical::server {

class ServableRetirement : public std::enable_shared_from_this<ServableRetirement> {
 public:
  static std::shared_ptr<ServableRetirement> Start();
  ~ServableRetirement();

  // A lease on `servable`: when it and every copy made from it are gone, `servable` is shut
  // down and freed here, then `drained` runs (on this class's thread).
  std::shared_ptr<Servable> Lease(std::shared_ptr<Servable> servable, std::function<void()> drained);

  // Frees what is queued, then stops the thread; leases released later shut their servable
  // down on a thread of their own. Idempotent.
  void Stop();

  // Servables whose last lease is gone and which are being shut down now.
  int pending() const;

 private:
  struct Job {
    std::shared_ptr<Servable> servable;
    std::function<void()> drained;
  };
  ServableRetirement() = default;
  void Enqueue(Job job);
  void Run();
  static void Retire(Job job);

  mutable absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace elliptical::server
