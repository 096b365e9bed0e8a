#include "server/core/repository_calls.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/log.h"
#include "server/repository/model_versions.h"

namespace elliptical::server {

const char* ChangeName(RepositoryCalls::Change change) {
  return change == RepositoryCalls::Change::kLoad ? "load" : "unload";
}

RepositoryCalls::RepositoryCalls(ModelRepository* repository, const CallTracker* calls)
    : repository_(repository), calls_(calls) {
  worker_ = std::thread([this] { Loop(); });
}

RepositoryCalls::~RepositoryCalls() { Stop(); }

std::vector<ModelSnapshot> RepositoryCalls::Versions(const std::string& name) const {
  std::vector<ModelSnapshot> out;
  for (ModelSnapshot& snapshot : repository_->Index(/*ready_only=*/false)) {
    if (snapshot.name == name) out.push_back(std::move(snapshot));
  }
  return out;
}

void RepositoryCalls::Start(Change change, const std::string& name, std::function<void(const absl::Status&)> done) {
  // The name reaches the disk: refused here before the repository sees it, whatever it checks.
  if (absl::Status s = CheckModelName(name); !s.ok()) return done(s);
  if (calls_ && calls_->draining()) {
    return done(absl::UnavailableError("the server is shutting down: models are neither loaded nor unloaded"));
  }
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) {
      refused = absl::UnavailableError("the server is shutting down: models are neither loaded nor unloaded");
    } else if (queue_.size() >= kMaxQueued) {
      refused = absl::ResourceExhaustedError(
          absl::StrCat(kMaxQueued, " repository changes are waiting already; retry later"));
    } else {
      queue_.push_back(Pending{change, name, std::move(done)});
      return;
    }
  }
  done(refused);
}

void RepositoryCalls::Loop() {
  for (;;) {
    Pending next;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](RepositoryCalls* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopped_ || !self->queue_.empty();
          },
          this));
      if (stopped_) return;  // Stop() answers what is queued
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    const absl::Time start = absl::Now();
    LogInfo("repository: %s of model \"%s\" requested", ChangeName(next.change), next.name);
    absl::Status status = next.change == Change::kLoad ? repository_->LoadModel(next.name)
                                                       : repository_->UnloadModel(next.name);
    LogInfo("repository: %s of model \"%s\": %s (%.2f s)", ChangeName(next.change), next.name,
            status.ok() ? "done" : status.ToString(), absl::ToDoubleSeconds(absl::Now() - start));
    next.done(status);
  }
}

void RepositoryCalls::Stop() {
  std::deque<Pending> abandoned;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    abandoned.swap(queue_);
  }
  for (Pending& p : abandoned) {
    p.done(absl::UnavailableError("the server is shutting down: models are neither loaded nor unloaded"));
  }
  if (worker_.joinable()) worker_.join();
}

}  // namespace elliptical::server
