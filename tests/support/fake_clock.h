// A clock that moves only when the test says so. Waiters registered through WaitUntil are woken
// by Advance, under their own mutex, so no wake-up is lost between their check and their wait.
#pragma once

#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/batching/clock.h"

namespace elliptical::server {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch() + absl::Hours(1)) : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  void WaitUntil(absl::Mutex* mu, absl::CondVar* cv, absl::Time deadline) const override {
    {
      absl::MutexLock lock(&mu_);
      if (now_ >= deadline) return;
      waiters_.push_back({mu, cv});
    }
    cv->Wait(mu);
    absl::MutexLock lock(&mu_);
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->second == cv) {
        waiters_.erase(it);
        break;
      }
    }
  }

  void Advance(absl::Duration d) {
    std::vector<std::pair<absl::Mutex*, absl::CondVar*>> waiters;
    {
      absl::MutexLock lock(&mu_);
      now_ += d;
      waiters = waiters_;
    }
    for (auto [mu, cv] : waiters) {
      absl::MutexLock lock(mu);
      cv->SignalAll();
    }
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  mutable std::vector<std::pair<absl::Mutex*, absl::CondVar*>> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace elliptical::server
