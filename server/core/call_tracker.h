// Counts the inference calls in progress so that shutdown can wait for exactly them: once the
// last accepted call has finished, the server closes its connections at once instead of
// waiting on idle clients to acknowledge a goodbye (gRPC's graceful shutdown waits up to its
// keepalive timeout, 20 s, for each connection that does not answer).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace elliptical::server {

class CallTracker {
 public:
  // A call in progress, from its handler until gRPC is done with it.
  class Scope {
   public:
    explicit Scope(CallTracker* tracker) : tracker_(tracker) {
      if (tracker_) tracker_->Enter();
    }
    ~Scope() {
      if (tracker_) tracker_->Leave();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    CallTracker* const tracker_;
  };

  // From now on draining() is true: handlers refuse new calls with UNAVAILABLE.
  void BeginDrain() {
    absl::MutexLock lock(&mu_);
    draining_ = true;
  }
  bool draining() const {
    absl::MutexLock lock(&mu_);
    return draining_;
  }
  // True when every call has finished by `deadline`.
  bool WaitUntilIdle(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_ == 0; };
    return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
  }
  int active() const {
    absl::MutexLock lock(&mu_);
    return active_;
  }

 private:
  void Enter() {
    absl::MutexLock lock(&mu_);
    ++active_;
  }
  void Leave() {
    absl::MutexLock lock(&mu_);
    --active_;
  }

  mutable absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace elliptical::server
