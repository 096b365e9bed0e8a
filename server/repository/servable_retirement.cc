#include "server/repository/servable_retirement.h"

#include <utility>

namespace elliptical::server {

std::shared_ptr<ServableRetirement> ServableRetirement::Start() {
  std::shared_ptr<ServableRetirement> r(new ServableRetirement());
  r->thread_ = std::thread([raw = r.get()] { raw->Run(); });
  return r;
}

ServableRetirement::~ServableRetirement() { Stop(); }

std::shared_ptr<Servable> ServableRetirement::Lease(std::shared_ptr<Servable> servable,
                                                    std::function<void()> drained) {
  Servable* raw = servable.get();
  // The deleter holds the servable and a weak reference to this: a lease released after Stop
  // (the process is exiting) still shuts its servable down.
  return std::shared_ptr<Servable>(
      raw, [owner = std::move(servable), drained = std::move(drained),
            self = weak_from_this()](Servable*) mutable {
        Job job{std::move(owner), std::move(drained)};
        if (auto retirement = self.lock()) {
          retirement->Enqueue(std::move(job));
        } else {
          std::thread(&ServableRetirement::Retire, std::move(job)).detach();
        }
      });
}

void ServableRetirement::Enqueue(Job job) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopped_) {
      jobs_.push_back(std::move(job));
      return;
    }
  }
  std::thread(&ServableRetirement::Retire, std::move(job)).detach();
}

void ServableRetirement::Retire(Job job) {
  job.servable->Shutdown();  // nothing is queued (no lease is left); stops its threads
  job.servable.reset();
  if (job.drained) job.drained();
}

void ServableRetirement::Run() {
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ServableRetirement* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) { return r->stopped_ || !r->jobs_.empty(); },
          this));
      if (jobs_.empty()) return;  // stopped, and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    Retire(std::move(job));
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

void ServableRetirement::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ && !thread_.joinable()) return;
    stopped_ = true;
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

int ServableRetirement::pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(jobs_.size()) + running_;
}

}  // namespace elliptical::server
