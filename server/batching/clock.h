// The time source of the batcher and the generation scheduler. Production uses the real clock;
// tests substitute tests/support/fake_clock.h so that queue delays, deadlines and priority aging
// are decided by the test, not by how loaded the machine is.
#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace elliptical::server {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // With `mu` held: waits on `cv` until it is signalled or this clock reaches `deadline`. May
  // return early (callers re-check their condition), never later than a signal.
  virtual void WaitUntil(absl::Mutex* mu, absl::CondVar* cv, absl::Time deadline) const = 0;

  static const Clock* Real();
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void WaitUntil(absl::Mutex* mu, absl::CondVar* cv, absl::Time deadline) const override {
    if (deadline == absl::InfiniteFuture()) {
      cv->Wait(mu);
    } else {
      cv->WaitWithDeadline(mu, deadline);
    }
  }
};

inline const Clock* Clock::Real() {
  static const RealClock clock;
  return &clock;
}

}  // namespace elliptical::server
