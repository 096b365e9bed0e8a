// The repository API's verbs, whatever protocol carries them: KServe's repository extension
// over gRPC and HTTP (server/protocols/kserve) and elliptical.v1's RepositoryIndex, LoadModel and
// UnloadModel (server/protocols/elliptical_v1). The protocols map their messages; the model
// repository (server/repository/model_repository.h) does the work.
//
// Who may change the repository is decided before a call gets here (--repository_access:
// server/security/repository_access.h, at the gRPC port's auth processor and in the HTTP
// routes). Here a model name passes CheckModelName (a request's name reaches the disk) before
// the repository sees it, and changes are refused while the server drains.
//
// A load reads weights and warms the model up (seconds), so changes run on a thread of their
// own, one at a time and in arrival order, and answer through a callback: no gRPC or HTTP thread
// waits for one. At most kMaxQueued changes wait; beyond, RESOURCE_EXHAUSTED.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/core/call_tracker.h"
#include "server/repository/model_repository.h"

namespace elliptical::server {

class RepositoryCalls {
 public:
  static constexpr size_t kMaxQueued = 16;

  // `repository` and `calls` (optional: shutdown's drain state) must outlive this object.
  RepositoryCalls(ModelRepository* repository, const CallTracker* calls = nullptr);
  // Stop().
  ~RepositoryCalls();
  RepositoryCalls(const RepositoryCalls&) = delete;
  RepositoryCalls& operator=(const RepositoryCalls&) = delete;

  // Every version of every model (ModelRepository::Index).
  std::vector<ModelSnapshot> Index(bool ready_only) const { return repository_->Index(ready_only); }
  // One model's versions as Index has them, newest first (empty for an unknown name).
  std::vector<ModelSnapshot> Versions(const std::string& name) const;
  ControlMode control_mode() const { return repository_->control_mode(); }

  enum class Change { kLoad, kUnload };
  // Loads or unloads `name` (ModelRepository::LoadModel, UnloadModel). `done` runs exactly once
  // with the outcome: on the change thread once the repository has answered, or at once, on the
  // caller's thread, for a bad name (INVALID_ARGUMENT), while draining or stopped (UNAVAILABLE)
  // or when too many changes wait (RESOURCE_EXHAUSTED).
  void Start(Change change, const std::string& name, std::function<void(const absl::Status&)> done);

  // Refuses new changes, answers the queued ones UNAVAILABLE and waits for the one in progress.
  // Idempotent.
  void Stop();

 private:
  struct Pending {
    Change change;
    std::string name;
    std::function<void(const absl::Status&)> done;
  };
  void Loop();

  ModelRepository* const repository_;
  const CallTracker* const calls_;
  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

const char* ChangeName(RepositoryCalls::Change change);

}  // namespace elliptical::server
